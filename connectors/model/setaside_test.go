package model

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSetAsideTextIsBounded(t *testing.T) {
	long := strings.Repeat("é", 400) // two bytes a character
	s := NewSetAside("c", "v", KindProduct, "id", time.Time{}, []byte(`{"a":1}`), long)
	if len(s.Reason) > MaxReasonLen || !utf8.ValidString(s.Reason) {
		t.Errorf("reason of %d bytes, valid UTF-8 %v", len(s.Reason), utf8.ValidString(s.Reason))
	}
	raw := []byte(`{"a":1}`)
	s = NewSetAside("c", "v", KindProduct, "id", time.Time{}, raw, "r")
	raw[2] = 'b'
	if string(s.Raw) != `{"a":1}` {
		t.Errorf("the raw document was not copied: %s", s.Raw)
	}
	for _, tc := range []struct{ in, want string }{
		{"ACCREC", `"ACCREC"`},
		{strings.Repeat("x", 50), `"` + strings.Repeat("x", 40) + `..."`},
		{strings.Repeat("日", 20), `"` + strings.Repeat("日", 13) + `..."`},
		{"a\"b\n", `"a\"b\n"`},
	} {
		if got := QuoteValue(tc.in); got != tc.want {
			t.Errorf("QuoteValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
