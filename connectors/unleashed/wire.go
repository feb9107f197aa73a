package unleashed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// sinceLayout is how Unleashed wants modifiedSince: UTC, no zone, no
// fraction ("2024-04-17T23:11:05").
const sinceLayout = "2006-01-02T15:04:05"

// sign returns api-auth-signature for a raw query string (without '?', ""
// when there is none): base64(HMAC-SHA256(apiKey, query)), the key used as
// the UTF-8 bytes of the key string.
func sign(rawQuery, apiKey string) string {
	m := hmac.New(sha256.New, []byte(apiKey))
	m.Write([]byte(rawQuery))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// query builds a query string whose encoded and decoded forms are equal for
// the values we send (dates, codes, comma lists): only the characters that
// must be escaped are, so the signature holds whichever form Unleashed
// compares (unconfirmed). Parameters keep the order given.
type query []string

func (q *query) add(k, v string) { *q = append(*q, k+"="+escape(v)) }

func (q query) String() string { return strings.Join(q, "&") }

func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~:,", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var errNotADate = errors.New("not an Unleashed date")

// parseTime parses the date forms Unleashed sends: Microsoft JSON dates
// ("/Date(1473149768263)/", milliseconds since the epoch, UTC, optionally
// with an offset suffix "+1200" that does not change the instant) and ISO
// 8601 with or without fraction and zone (no zone is UTC).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/Date(") && strings.HasSuffix(s, ")/") {
		inner := s[len("/Date(") : len(s)-len(")/")]
		// An offset follows the digits: /Date(1539993600000+1300)/.
		cut := len(inner)
		for i := 1; i < len(inner); i++ {
			if inner[i] == '+' || inner[i] == '-' {
				cut = i
				break
			}
		}
		ms, err := strconv.ParseInt(inner[:cut], 10, 64)
		if err != nil {
			return time.Time{}, errNotADate
		}
		if off := inner[cut:]; off != "" {
			if len(off) != 5 {
				return time.Time{}, errNotADate
			}
			if _, err := strconv.Atoi(off[1:]); err != nil {
				return time.Time{}, errNotADate
			}
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errNotADate
}

// percent turns Unleashed's fractional rate (0.15) into percent (15)
// through decimals, so 0.15 gives exactly 15.
func percent(d model.Decimal) float64 {
	r, ok := new(big.Rat).SetString(string(d))
	if !ok {
		return 0
	}
	f, _ := new(big.Rat).Mul(r, big.NewRat(100, 1)).Float64()
	return f
}

// discounted returns price less pct percent, exactly; price alone when
// there is no discount.
func discounted(price, pct model.Decimal) model.Decimal {
	if price == "" || isZero(pct) {
		return price
	}
	p, ok1 := new(big.Rat).SetString(string(price))
	d, ok2 := new(big.Rat).SetString(string(pct))
	if !ok1 || !ok2 {
		return price
	}
	f := new(big.Rat).Sub(big.NewRat(1, 1), new(big.Rat).Quo(d, big.NewRat(100, 1)))
	return model.Decimal(vendorjson.TrimDecimal(new(big.Rat).Mul(p, f).FloatString(20)))
}

func isZero(d model.Decimal) bool { return d == "" || d == "0" }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// obj reads a Unleashed JSON object field by field.
type obj = vendorjson.Obj

var objOptions = vendorjson.Options{ParseTime: parseTime, BadDate: "not an Unleashed date"}

// newObj splits a Unleashed JSON object into its fields.
func newObj(raw json.RawMessage) (*obj, error) { return vendorjson.New(raw, objOptions) }
