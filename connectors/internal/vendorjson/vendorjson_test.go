package vendorjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

var testOpts = Options{
	ParseTime: func(s string) (time.Time, error) {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return time.Time{}, errors.New("bad")
		}
		return t, nil
	},
	BadDate: "not a Test date",
}

func mustNew(t *testing.T, doc string) *Obj {
	t.Helper()
	o, err := New(json.RawMessage(doc), testOpts)
	if err != nil {
		t.Fatalf("New(%s): %v", doc, err)
	}
	return o
}

func TestNewRejectsNonObjects(t *testing.T) {
	for _, doc := range []string{`[]`, `"x"`, `12`, `null`, ``, `{"a":1`} {
		_, err := New(json.RawMessage(doc), testOpts)
		if err == nil || err.Error() != "field (record): not a JSON object" {
			t.Errorf("New(%q) = %v; want the not-an-object error", doc, err)
		}
	}
}

// TestReads checks each reader on a good value and the error it gives on a
// bad one; the error names the field, never the value.
func TestReads(t *testing.T) {
	for _, tc := range []struct {
		name    string
		doc     string
		read    func(o *Obj) any
		want    any
		wantErr string
	}{
		{"str", `{"A":"x"}`, func(o *Obj) any { return o.Str("A") }, "x", ""},
		{"str escaped", `{"A":"a\"b"}`, func(o *Obj) any { return o.Str("A") }, `a"b`, ""},
		{"str case-insensitive", `{"name":"x"}`, func(o *Obj) any { return o.Str("Name") }, "x", ""},
		{"str exact first", `{"name":"lo","Name":"hi"}`, func(o *Obj) any { return o.Str("Name") }, "hi", ""},
		{"str escaped key", `{"N\u0061me":"x"}`, func(o *Obj) any { return o.Str("Name") }, "x", ""},
		{"str absent", `{}`, func(o *Obj) any { return o.Str("A") }, "", ""},
		{"str null", `{"A":null}`, func(o *Obj) any { return o.Str("A") }, "", ""},
		{"str bad", `{"A":12}`, func(o *Obj) any { return o.Str("A") }, "", "field A: not a string"},
		{"reqStr", `{"A":"x"}`, func(o *Obj) any { return o.ReqStr("A") }, "x", ""},
		{"reqStr empty", `{"A":""}`, func(o *Obj) any { return o.ReqStr("A") }, "", "field A: missing or empty"},
		{"reqStr absent", `{}`, func(o *Obj) any { return o.ReqStr("A") }, "", "field A: missing or empty"},
		{"dec", `{"A":12.50}`, func(o *Obj) any { return o.Dec("A") }, model.Decimal("12.5"), ""},
		{"dec string", `{"A":" 1e-2 "}`, func(o *Obj) any { return o.Dec("A") }, model.Decimal("0.01"), ""},
		{"dec absent", `{}`, func(o *Obj) any { return o.Dec("A") }, model.Decimal(""), ""},
		{"dec bad", `{"A":"abc"}`, func(o *Obj) any { return o.Dec("A") }, model.Decimal(""), "field A: not a number"},
		{"dec bool", `{"A":true}`, func(o *Obj) any { return o.Dec("A") }, model.Decimal(""), "field A: not a number"},
		{"float", `{"A":"2.5"}`, func(o *Obj) any { return o.Float("A") }, 2.5, ""},
		{"float absent", `{}`, func(o *Obj) any { return o.Float("A") }, 0.0, ""},
		{"float bad", `{"A":[1]}`, func(o *Obj) any { return o.Float("A") }, 0.0, "field A: not a number"},
		{"bool", `{"A":true}`, func(o *Obj) any { return o.Bool("A") }, true, ""},
		{"bool false", `{"A":false}`, func(o *Obj) any { return o.Bool("A") }, false, ""},
		{"bool bad", `{"A":"true"}`, func(o *Obj) any { return o.Bool("A") }, false, "field A: not a boolean"},
		{"time", `{"A":"2024-03-01"}`, func(o *Obj) any { return o.Time("A", true) }, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), ""},
		{"time missing", `{}`, func(o *Obj) any { return o.Time("A", true) }, time.Time{}, "field A: missing date"},
		{"time optional", `{}`, func(o *Obj) any { return o.Time("A", false) }, time.Time{}, ""},
		{"time bad", `{"A":"secret"}`, func(o *Obj) any { return o.Time("A", false) }, time.Time{}, "field A: not a Test date"},
		{"optTime absent", `{}`, func(o *Obj) any { return o.OptTime("A") }, (*time.Time)(nil), ""},
		{"arr", `{"A":[1, "b" ,{"c":[2]}]}`, func(o *Obj) any { return o.Arr("A") }, []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"b"`), json.RawMessage(`{"c":[2]}`)}, ""},
		{"arr null", `{"A":null}`, func(o *Obj) any { return o.Arr("A") }, []json.RawMessage(nil), ""},
		{"arr bad", `{"A":{}}`, func(o *Obj) any { return o.Arr("A") }, []json.RawMessage(nil), "field A: not an array"},
		{"first error sticks", `{"A":1,"B":2}`, func(o *Obj) any { o.Str("A"); return o.Str("B") }, "", "field A: not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := mustNew(t, tc.doc)
			got := tc.read(o)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			err := o.Err()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("error %v, want none", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FieldError", err)
			}
		})
	}
}

func TestChildAndAdopt(t *testing.T) {
	for _, tc := range []struct {
		doc, wantErr string
	}{
		{`{"Lines":[{"D":"2024-01-02"},{"D":"bad"}]}`, "field Lines[1].D: not a Test date"},
		{`{"Lines":[{"D":"2024-01-02"},3]}`, "field Lines[1]: not a JSON object"},
		{`{"Lines":[{"D":"2024-01-02"}]}`, ""},
	} {
		o := mustNew(t, tc.doc)
		for i, raw := range o.Arr("Lines") {
			c := o.Child("Lines", i, raw)
			c.Time("D", false) // the child keeps the date parser
			o.Adopt(fmt.Sprintf("Lines[%d]", i), c)
		}
		if got := errString(o.Err()); got != tc.wantErr {
			t.Errorf("%s: error %q, want %q", tc.doc, got, tc.wantErr)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestZeroObj(t *testing.T) {
	var o Obj
	if o.Str("A") != "" || o.Get("A") != nil || o.Err() != nil || o.OptTime("A") != nil {
		t.Error("the zero Obj is not empty")
	}
}

func TestSplitArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, nil, true},
		{` [ 1 , "a,]" , [2,3] , {"b":"}"} ] `, []string{`1`, `"a,]"`, `[2,3]`, `{"b":"}"}`}, true},
		{`{}`, nil, false},
		{`"x"`, nil, false},
		{``, nil, false},
	} {
		got, ok := SplitArray([]byte(tc.in))
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if ok != tc.ok || !reflect.DeepEqual(gs, tc.want) {
			t.Errorf("SplitArray(%q) = %q, %v; want %q, %v", tc.in, gs, ok, tc.want, tc.ok)
		}
	}
}

func TestOrderedObject(t *testing.T) {
	for _, tc := range []struct {
		in         string
		keys, vals []string
		ok         bool
	}{
		{`{"Tier 2":2,"Tier 1":"1.5","T\u00e9":null}`, []string{"Tier 2", "Tier 1", "Té"}, []string{`2`, `"1.5"`, `null`}, true},
		{`{}`, []string{}, nil, true},
		{`[1]`, nil, nil, false},
	} {
		keys, vals, ok := OrderedObject(json.RawMessage(tc.in))
		var vs []string
		for _, v := range vals {
			vs = append(vs, string(v))
		}
		if ok != tc.ok || !reflect.DeepEqual(keys, tc.keys) || !reflect.DeepEqual(vs, tc.vals) {
			t.Errorf("OrderedObject(%q) = %q, %q, %v; want %q, %q, %v", tc.in, keys, vs, ok, tc.keys, tc.vals, tc.ok)
		}
	}
}

func TestDecimal(t *testing.T) {
	for in, want := range map[string]model.Decimal{
		"12.50": "12.5", "8": "8", "0": "0", "-0.010": "-0.01", "1e-2": "0.01", "1.5E3": "1500", "10.0000000000": "10", "-0": "0", "007.10": "7.1", "": "", " +3.0 ": "3",
	} {
		got, err := Decimal(json.Number(in))
		if err != nil || got != want {
			t.Errorf("Decimal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"abc", "1.2.3", "--1"} {
		if _, err := Decimal(json.Number(bad)); err == nil {
			t.Errorf("Decimal(%q) succeeded", bad)
		}
	}
}

func TestTrimDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"12.5000": "12.5", "-0.000": "0", "+007": "7", "0.10": "0.1", "-1.0": "-1", ".5": "0.5",
	} {
		if got := TrimDecimal(in); got != want {
			t.Errorf("TrimDecimal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorsNeverCarryValues(t *testing.T) {
	o := mustNew(t, `{"A":"s3cr3t-value"}`)
	o.Time("A", true)
	if err := o.Err(); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %v", err)
	}
}
