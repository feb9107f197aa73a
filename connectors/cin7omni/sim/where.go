package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cond is one comparison of a where clause: Field op literal.
type cond struct {
	field, op, lit string
	quoted         bool
	// loc reads date literals without a zone (the account's time zone).
	loc *time.Location
}

// parseWhere reads the subset of Cin7 Omni's where syntax the connector
// and the demo use: comparisons joined by AND, string and date literals in
// single quotes (” escapes a quote), bare numbers and booleans.
func parseWhere(s string, loc *time.Location) ([]cond, error) {
	bad := func(why string) ([]cond, error) {
		return nil, fmt.Errorf("invalid where clause: %s", why)
	}
	var out []cond
	rest := strings.TrimSpace(s)
	for {
		i := 0
		for i < len(rest) && (isIdent(rest[i])) {
			i++
		}
		if i == 0 {
			return bad("expected a field name")
		}
		c := cond{field: rest[:i], loc: loc}
		rest = strings.TrimSpace(rest[i:])
		for _, op := range []string{">=", "<=", "<>", "!=", "=", ">", "<"} {
			if strings.HasPrefix(rest, op) {
				c.op = op
				break
			}
		}
		if c.op == "" {
			return bad("expected an operator after " + c.field)
		}
		rest = strings.TrimSpace(rest[len(c.op):])
		if strings.HasPrefix(rest, "'") {
			var b strings.Builder
			j := 1
			for ; j < len(rest); j++ {
				if rest[j] == '\'' {
					if j+1 < len(rest) && rest[j+1] == '\'' {
						b.WriteByte('\'')
						j++
						continue
					}
					break
				}
				b.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return bad("unterminated string")
			}
			c.lit, c.quoted = b.String(), true
			rest = strings.TrimSpace(rest[j+1:])
		} else {
			j := 0
			for j < len(rest) && rest[j] != ' ' {
				j++
			}
			if j == 0 {
				return bad("expected a value after " + c.field + c.op)
			}
			c.lit = rest[:j]
			rest = strings.TrimSpace(rest[j:])
		}
		out = append(out, c)
		if rest == "" {
			return out, nil
		}
		if len(rest) < 4 || !strings.EqualFold(rest[:4], "AND ") {
			return bad("only AND joins comparisons")
		}
		rest = strings.TrimSpace(rest[4:])
	}
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

// parseLiteralTime reads a date literal: ISO 8601 with or without fraction
// and zone (no zone: the account's local time), or a date.
func parseLiteralTime(v string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid where clause: %q is not a date", v)
}

// fields gives a record's filterable fields by lower-case name.
type fields map[string]any

// match evaluates the clause against a record; an unknown field or a
// literal of the wrong type is an error (Cin7 Omni answers 400).
func match(conds []cond, f fields) (bool, error) {
	for _, c := range conds {
		v, ok := f[strings.ToLower(c.field)]
		if !ok {
			return false, fmt.Errorf("invalid where clause: unknown field %s", c.field)
		}
		var cmp int
		switch x := v.(type) {
		case time.Time:
			t, err := parseLiteralTime(c.lit, c.loc)
			if err != nil {
				return false, err
			}
			cmp = x.Compare(t)
		case int:
			n, err := strconv.Atoi(c.lit)
			if err != nil {
				return false, fmt.Errorf("invalid where clause: %s wants a number", c.field)
			}
			cmp = compareInt(x, n)
		case bool:
			b, err := strconv.ParseBool(c.lit)
			if err != nil {
				return false, fmt.Errorf("invalid where clause: %s wants true or false", c.field)
			}
			cmp = 1
			if x == b {
				cmp = 0
			}
			if c.op != "=" && c.op != "<>" && c.op != "!=" {
				return false, fmt.Errorf("invalid where clause: %s compares with = or <>", c.field)
			}
		case string:
			cmp = strings.Compare(strings.ToLower(x), strings.ToLower(c.lit))
		default:
			return false, fmt.Errorf("invalid where clause: %s cannot be filtered", c.field)
		}
		var ok2 bool
		switch c.op {
		case "=":
			ok2 = cmp == 0
		case "<>", "!=":
			ok2 = cmp != 0
		case ">":
			ok2 = cmp > 0
		case ">=":
			ok2 = cmp >= 0
		case "<":
			ok2 = cmp < 0
		case "<=":
			ok2 = cmp <= 0
		}
		if !ok2 {
			return false, nil
		}
	}
	return true, nil
}

func compareInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
