package controllers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
)

func TestTruncate(t *testing.T) {
	cases := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short ASCII unchanged", "hello", 10, "hello"},
		{"exact fit unchanged", "hello", 5, "hello"},
		{"ASCII cut with ellipsis", "hello world", 8, "hello..."},
		{"two-byte runes never split", "ééééé", 8, "éé..."}, // 5 bytes of é fit in 8-3: two whole runes
		{"three-byte runes never split", "日本語テキスト", 10, "日本..."},
		{"four-byte runes never split", "😀😀😀", 9, "😀..."},
		{"multi-byte exact fit", "日本", 6, "日本"},
		{"bound of the ellipsis cuts without one", "日本語", 3, "日"},
		{"room for the ellipsis only", "日本語", 5, "..."},
		{"zero bound", "abc", 0, ""},
		{"negative bound", "abc", -1, ""},
		{"invalid UTF-8 is replaced", "ab\xffcd", 10, "ab?cd"},
		{"invalid UTF-8 then cut", "\xff\xfe日本語", 8, "?日..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := truncate(tc.in, tc.n)
			if got != tc.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
			if len(got) > max(tc.n, 0) {
				t.Errorf("truncate(%q, %d) has %d bytes", tc.in, tc.n, len(got))
			}
			if !utf8.ValidString(got) {
				t.Errorf("truncate(%q, %d) = %q is not valid UTF-8", tc.in, tc.n, got)
			}
		})
	}
	// Every bound, on text mixing widths: always valid and within it.
	mixed := strings.Repeat("aé日😀", 50)
	for n := 0; n <= len(mixed)+1; n++ {
		got := truncate(mixed, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("truncate(mixed, %d) = %d bytes, valid %v", n, len(got), utf8.ValidString(got))
		}
	}
}

func TestEventNotesAreBounded(t *testing.T) {
	fake := events.NewFakeRecorder(4)
	rec := boundedRecorder{fake}
	long := strings.Repeat("日", 2000) // 6000 bytes
	rec.Eventf(&erpv1.ErpSync{}, nil, "Warning", "SyncFailed", "Sync", "%s", long)
	rec.Eventf(&erpv1.ErpSync{}, nil, "Normal", "Resumed", "Resume", "sync resumed")
	got := <-fake.Events
	note := strings.TrimPrefix(got, "Warning SyncFailed ")
	if len(note) > maxEventNoteLen || !utf8.ValidString(note) || !strings.HasSuffix(note, "...") {
		t.Errorf("note of %d bytes (valid %v), want at most %d marked as cut", len(note), utf8.ValidString(note), maxEventNoteLen)
	}
	if got := <-fake.Events; got != "Normal Resumed sync resumed" {
		t.Errorf("short note %q, want it unchanged", got)
	}
}

func TestConditionMessagesAreBounded(t *testing.T) {
	o := &erpv1.ErpSync{}
	setCondition(o, erpv1.ReadyCondition, metav1.ConditionFalse, "X", strings.Repeat("é", 40*1024))
	msg := o.Status.Conditions[0].Message
	if len(msg) > maxConditionMessageLen || !utf8.ValidString(msg) {
		t.Errorf("condition message of %d bytes (valid %v), want at most %d", len(msg), utf8.ValidString(msg), maxConditionMessageLen)
	}
}

// TestFailureMessagesAreNoNetworkOracle: whatever stopped a connection (the
// egress policy after resolving the name, a refused or timed-out dial, a
// TLS failure), the condition reads the same; vendor text is bounded.
func TestFailureMessagesAreNoNetworkOracle(t *testing.T) {
	policy, err := egress.New(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	r := &ErpSyncReconciler{Egress: policy, Registry: connectors.NewRegistry()}
	obj := func(baseURL string) *erpv1.ErpSync {
		o := &erpv1.ErpSync{}
		o.Spec.Connector.Type = erpv1.ConnectorUnleashed
		o.Spec.Connector.BaseURL = baseURL
		return o
	}
	wrap := func(err error) error {
		return connectors.Wrap(connectors.KindERPUnavailable, err, "GET /Products/1: no answer after 4 attempts")
	}
	refusedAtDial := &connectors.Error{Kind: connectors.KindInvalidConfig, Msg: `the host "erp.evil.example" is not allowed by the egress policy`, Err: egress.ErrRefused}
	const unreachableMsg = "the ERP could not be reached (host erp.evil.example)"
	cases := []struct {
		name    string
		err     error
		baseURL string
		reason  string
		msg     string
		stalled bool
	}{
		{"refused at dial time (a name resolving to a private address)", refusedAtDial, "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"connection refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}), "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"dial timeout", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}), "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"request deadline", wrap(fmt.Errorf("reading body: %w", context.DeadlineExceeded)), "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"TLS failure", wrap(x509.UnknownAuthorityError{}), "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"DNS failure", wrap(&net.DNSError{Err: "no such host", Name: "erp.evil.example", IsNotFound: true}), "https://erp.evil.example", "ERPUnavailable", unreachableMsg, false},
		{"the egress client's own error names its host", wrap(&egress.UnreachableError{Host: "token.evil.example"}), "https://erp.evil.example", "ERPUnavailable", "the ERP could not be reached (host token.evil.example)", false},
		{"no base URL: the vendor's endpoint", wrap(&net.OpError{Op: "dial", Err: errors.New("i/o timeout")}), "", "ERPUnavailable", "the ERP could not be reached (the vendor's default endpoint)", false},
		{"a refusal the spec alone explains says why, and stalls",
			&connectors.Error{Kind: connectors.KindInvalidConfig, Msg: "x", Err: egress.ErrRefused}, "http://erp.evil.example", "InvalidConfig",
			`the host "erp.evil.example" is not allowed by the egress policy (plain http is allowed only to hosts the manager lists; use https): refused by the egress policy`, true},
		{"vendor text is bounded", connectors.Errorf(connectors.KindInvalidResponse, "the vendor answered: %s", strings.Repeat("日", 5000)), "", "InvalidResponse", "", false},
		{"a CRM failure is not the ERP's network", connectors.Wrap(connectors.KindCRMWriteFailed, &net.OpError{Op: "dial", Err: errors.New("refused")}, "writing to the CRM failed"), "", "CRMWriteFailed", "writing to the CRM failed: dial: refused", false},
		{"a status write to the API server is not the ERP's network", &statusWriteError{err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, "", "SyncFailed", "patching ErpSync status: dial: refused", false},
		{"the sync's own time bound", &syncTimedOut{bound: "spec.timeout 10m0s", err: context.DeadlineExceeded}, "", "ERPUnavailable", "the sync did not finish within its time bound (spec.timeout 10m0s); it resumes from its checkpoint", false},
		{"invalid config stalls", connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered", "widgets"), "", "InvalidConfig", `entity "widgets" is not offered`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, msg, stall := r.failure(tc.err, obj(tc.baseURL))
			if reason != tc.reason || stall != tc.stalled {
				t.Errorf("failure() = %q stalled %v, want %q stalled %v", reason, stall, tc.reason, tc.stalled)
			}
			if tc.msg != "" && msg != tc.msg {
				t.Errorf("message %q, want %q", msg, tc.msg)
			}
			if n := utf8.RuneCountInString(msg); n > maxErrorTextLen || !utf8.ValidString(msg) {
				t.Errorf("message of %d runes (valid %v), want at most %d", n, utf8.ValidString(msg), maxErrorTextLen)
			}
			for _, leak := range []string{"refused", "timeout", "x509", "no such host", "deadline"} {
				if strings.HasPrefix(msg, "the ERP could not be reached") && strings.Contains(msg, leak) {
					t.Errorf("message %q says %q: an oracle of the network", msg, leak)
				}
			}
		})
	}
}
