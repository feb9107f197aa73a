package vendorjson

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Decimal turns a JSON number into a canonical Decimal without going through
// a float: "12.50" gives "12.5", "1e-2" gives "0.01". A missing number is "".
func Decimal(n json.Number) (model.Decimal, error) {
	s := strings.TrimSpace(string(n))
	if s == "" {
		return "", nil
	}
	if plainDecimal(s) {
		return model.Decimal(TrimDecimal(s)), nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", fmt.Errorf("not a number")
	}
	return model.Decimal(TrimDecimal(r.FloatString(20))), nil
}

// Quantity reads a JSON number or numeric string as a float (quantities are
// not money). A missing number is zero.
func Quantity(n json.Number) (float64, error) {
	s := strings.TrimSpace(string(n))
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	return f, nil
}

// plainDecimal reports whether s is [-+]digits[.digits].
func plainDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") {
		return false
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

// TrimDecimal canonicalises a plain decimal string: no sign for zero, no
// leading zeros in the whole part, no trailing zeros in the fraction.
func TrimDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	frac = strings.TrimRight(frac, "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}
