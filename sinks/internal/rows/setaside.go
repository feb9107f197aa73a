package rows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// SetAsideTable is the table of documents set aside (since HashSince): one
// row per key (company, vendor, kind, vendor_id) with the document's
// modified time (NULL when unknown), the reason, the raw document, when it
// was first and last set aside and how many times.
const SetAsideTable = "set_aside"

// SetAsideColumns are the columns of the set-aside table.
var SetAsideColumns = []string{"company", "vendor", "kind", "vendor_id", "modified_at", "reason", "raw", "first_seen", "last_seen", "attempts"}

// SetAsideRow is a set-aside document prepared for storing.
type SetAsideRow struct {
	Company, Vendor, Kind, VendorID string
	// ModifiedAt is in UTC, truncated to microseconds; zero when unknown.
	ModifiedAt time.Time
	// Reason is printable, valid UTF-8 and at most model.MaxReasonLen bytes.
	Reason string
	// Raw is the vendor document, or nil.
	Raw []byte
}

// PlanSetAside validates set-aside documents and prepares them: for each key
// only the last one is kept (as storing them in turn would leave), sorted
// by key so that concurrent writers lock rows in one order. The error names
// the document but never its content.
func PlanSetAside(items []model.SetAside) ([]SetAsideRow, error) {
	index := make(map[model.Key]int, len(items))
	out := make([]SetAsideRow, 0, len(items))
	for i := range items {
		it := &items[i]
		r := model.Record{Company: it.Company, Vendor: it.Vendor, Kind: it.Kind, VendorID: it.VendorID}
		if err := ValidateKey(&r); err != nil {
			return nil, fmt.Errorf("set aside: %w", err)
		}
		row := SetAsideRow{Company: it.Company, Vendor: it.Vendor, Kind: string(it.Kind), VendorID: it.VendorID, Reason: CleanReason(it.Reason)}
		if !it.ModifiedAt.IsZero() {
			if y := it.ModifiedAt.UTC().Year(); y < 1 || y > 9999 {
				return nil, fmt.Errorf("set aside %s: modified time year %d out of range", Describe(&r), y)
			}
			row.ModifiedAt = StoredTime(it.ModifiedAt)
		}
		if len(it.Raw) > 0 {
			if !json.Valid(it.Raw) {
				return nil, fmt.Errorf("set aside %s: raw vendor document is not valid JSON", Describe(&r))
			}
			row.Raw = it.Raw
		}
		if j, ok := index[it.Key()]; ok {
			out[j] = row
			continue
		}
		index[it.Key()] = len(out)
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b SetAsideRow) int {
		return cmp.Or(cmp.Compare(a.Company, b.Company), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.VendorID, b.VendorID))
	})
	return out, nil
}

// CleanReason makes a reason safe to store and print: invalid UTF-8 and
// control characters dropped (databases reject NUL), whitespace collapsed,
// cut to model.MaxReasonLen bytes at a character boundary, and "no reason
// given" when nothing is left.
func CleanReason(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if !unicode.IsPrint(r) {
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > model.MaxReasonLen {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "no reason given"
	}
	return b.String()
}
