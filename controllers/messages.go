package controllers

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
)

// Reasons of this package's own failures, as connector error kinds.
const (
	kindSecretNotLabelled = connectors.ErrorKind(erpv1.ReasonSecretNotLabelled)
	kindCompanyClaimed    = connectors.ErrorKind(erpv1.ReasonCompanyClaimed)
)

// Bounds of the API server and of vendor text.
const (
	// maxEventNoteLen is the most bytes events.k8s.io/v1 accepts in an
	// event's note.
	maxEventNoteLen = 1024
	// maxConditionMessageLen is the most bytes metav1.Condition accepts in
	// a message.
	maxConditionMessageLen = 32 * 1024
	// maxErrorTextLen bounds, in runes, the text of a connector's error
	// (which may quote what the vendor answered) in a condition or event.
	maxErrorTextLen = 512
	// maxLoggedErrorLen bounds, in runes, an error's text in a log line.
	maxLoggedErrorLen = 2048
)

// ellipsis marks a cut.
const ellipsis = "..."

// truncate bounds s to n bytes, cutting on a UTF-8 character boundary and
// marking the cut with "...". Invalid UTF-8 is replaced first, so the result
// is always valid UTF-8 of at most n bytes (n < 0 counts as 0).
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if len(s) <= n {
		return s
	}
	if n <= len(ellipsis) {
		return cutRunes(s, max(n, 0))
	}
	return cutRunes(s, n-len(ellipsis)) + ellipsis
}

// cutRunes returns the longest prefix of the valid UTF-8 string s that has
// at most n bytes and ends on a character boundary.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// boundedRecorder formats each event note and truncates it to what
// events.k8s.io/v1 accepts, so that no note, whatever text it quotes, is
// refused by the API server (and so lost).
type boundedRecorder struct{ events.EventRecorder }

func (b boundedRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if len(args) > 0 {
		note = fmt.Sprintf(note, args...)
	}
	b.EventRecorder.Eventf(regarding, related, eventtype, reason, action, "%s", truncate(note, maxEventNoteLen))
}

// syncTimedOut marks a sync ended by its own time bound (spec.timeout, the
// interval, or --max-sync-duration), as opposed to a deadline inside a
// request.
type syncTimedOut struct {
	bound string
	err   error
}

func (e *syncTimedOut) Error() string {
	return "sync timed out after " + e.bound + ": " + e.err.Error()
}
func (e *syncTimedOut) Unwrap() error { return e.err }

// failure maps a sync's error to a Ready reason, a message for people and
// whether only a spec change can help (Stalled). The message is bounded and
// never serves as a probe of networks: a connection that could not be made
// (a refusal by the egress policy that the spec's URL alone does not
// explain, a refused or timed-out dial, a DNS or TLS failure) reads the
// same, "the ERP could not be reached" with the host, under the reason
// ERPUnavailable; the detail goes to the log only (see logDetail).
func (r *ErpSyncReconciler) failure(err error, obj *erpv1.ErpSync) (reason, msg string, stall bool) {
	var refused *refusedRequest
	if errors.As(err, &refused) {
		// A new request fixes it, and the next sync is routine: not
		// Stalled.
		return string(connectors.KindInvalidConfig), shown(refused.Error(), maxErrorTextLen), false
	}
	var to *syncTimedOut
	if errors.As(err, &to) {
		return string(connectors.KindERPUnavailable), "the sync did not finish within its time bound (" + to.bound + "); it resumes from its checkpoint", false
	}
	if errors.Is(err, egress.ErrRefused) && obj != nil && obj.Spec.Connector.BaseURL != "" && r.Egress != nil {
		// Refused for what the tenant wrote (plain http, an address
		// literal): saying so tells nothing of the network.
		if static := r.Egress.AllowsHost(r.Registry.DefaultHosts(string(obj.Spec.Connector.Type)), obj.Spec.Connector.BaseURL); static != nil {
			return string(connectors.KindInvalidConfig), shown(static.Error(), maxErrorTextLen), true
		}
	}
	if unreachable(err) {
		return string(connectors.KindERPUnavailable), "the ERP could not be reached" + hostNote(err, obj), false
	}
	k := connectors.KindOf(err)
	switch k {
	case "":
		return erpv1.ReasonSyncFailed, shown(err.Error(), maxErrorTextLen), false
	case connectors.KindInvalidConfig, kindCompanyClaimed:
		stall = true
	}
	return string(k), shown(err.Error(), maxErrorTextLen), stall
}

// unreachable reports whether err says that no answer could be had from
// the host at all: a dial, DNS, TLS or transport failure, or a refusal by
// the egress policy.
func unreachable(err error) bool {
	switch connectors.KindOf(err) {
	case connectors.KindCRMWriteFailed, connectors.KindCredentialsWriteFailed,
		connectors.KindSecretNotFound, connectors.KindSecretKeyMissing, kindSecretNotLabelled, kindCompanyClaimed:
		// Our own store or the cluster, not the vendor's network.
		return false
	}
	var sw *statusWriteError
	if errors.As(err, &sw) {
		return false
	}
	var unreach *egress.UnreachableError
	if errors.Is(err, egress.ErrRefused) || errors.As(err, &unreach) {
		return true
	}
	var (
		opErr   *net.OpError
		dnsErr  *net.DNSError
		addrErr *net.AddrError
		urlErr  *url.Error
		netErr  net.Error
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		badHost x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.As(err, &addrErr), errors.As(err, &urlErr),
		errors.As(err, &recErr), errors.As(err, &alert), errors.As(err, &verify),
		errors.As(err, &unknown), errors.As(err, &badHost), errors.As(err, &invalid):
		return true
	case errors.As(err, &netErr):
		// Timeouts of a request (context.DeadlineExceeded is a net.Error).
		return true
	}
	return false
}

// hostNote names the host that could not be reached: the one the egress
// client names, else the one the spec points at, else the vendor's default.
func hostNote(err error, obj *erpv1.ErpSync) string {
	var unreach *egress.UnreachableError
	if errors.As(err, &unreach) && unreach.Host != "" {
		return " (host " + shown(unreach.Host, 253) + ")"
	}
	if obj == nil || obj.Spec.Connector.BaseURL == "" {
		return " (the vendor's default endpoint)"
	}
	u, err := url.Parse(obj.Spec.Connector.BaseURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	return " (host " + shown(u.Hostname(), 253) + ")"
}

// logDetail is err's text fit for a log line: bounded, control characters
// replaced.
func logDetail(err error) string {
	if err == nil {
		return ""
	}
	return shown(err.Error(), maxLoggedErrorLen)
}

// refusedRequest is a request annotation the operator could not honour (an
// entity resync naming an entity the ErpSync does not sync): the sync that
// carried it fails with reason InvalidConfig, never Stalled.
type refusedRequest struct{ err error }

func (e *refusedRequest) Error() string { return e.err.Error() }
func (e *refusedRequest) Unwrap() error { return e.err }
