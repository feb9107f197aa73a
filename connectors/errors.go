package connectors

import (
	"errors"
	"fmt"
	"time"
)

// ErrorKind classifies a connector or sync failure. Each kind is also the
// Ready condition reason and event reason the controller reports.
type ErrorKind string

const (
	// KindAuthenticationFailed: the vendor refused the credentials (401/403,
	// invalid_grant). Fixed by rotating the Secret; retried at retryInterval.
	KindAuthenticationFailed ErrorKind = "AuthenticationFailed"
	// KindSecretNotFound: the credentials Secret does not exist.
	KindSecretNotFound ErrorKind = "SecretNotFound"
	// KindSecretKeyMissing: the Secret lacks a key the connector needs.
	KindSecretKeyMissing ErrorKind = "SecretKeyMissing"
	// KindInvalidConfig: the spec asks for something the connector cannot do
	// (an unknown entity, an unregistered type, a bad base URL).
	KindInvalidConfig ErrorKind = "InvalidConfig"
	// KindERPUnavailable: the vendor could not be reached or kept failing
	// (connection refused, 5xx after retries, timeouts).
	KindERPUnavailable ErrorKind = "ERPUnavailable"
	// KindInvalidResponse: the vendor sent a document that does not parse or
	// breaks the vendor's own contract.
	KindInvalidResponse ErrorKind = "InvalidResponse"
	// KindRateLimited: the vendor kept answering 429/503 beyond the retry
	// budget.
	KindRateLimited ErrorKind = "RateLimited"
	// KindQuotaExhausted: a daily or monthly call quota ran out; RetryAt says
	// when it resets.
	KindQuotaExhausted ErrorKind = "QuotaExhausted"
	// KindCRMWriteFailed: the sink refused or failed a write.
	KindCRMWriteFailed ErrorKind = "CRMWriteFailed"
	// KindCredentialsWriteFailed: rotated credentials (Xero's refresh token)
	// could not be written back to the Secret. The connector keeps them in
	// memory; RetryAt is the latest time a retry still saves the connection
	// (inside the vendor's grace for the old token), and the controller
	// retries by then even when retryInterval is longer.
	KindCredentialsWriteFailed ErrorKind = "CredentialsWriteFailed"
)

// Error is a classified failure. Its message must never contain credentials
// or record data.
type Error struct {
	Kind ErrorKind
	// Msg is a message for people, shown in the Ready condition and events.
	Msg string
	// RetryAt, when set, is the earliest time a retry can succeed (a quota
	// reset, a Retry-After).
	RetryAt time.Time
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg != "" {
		return e.Msg + ": " + e.Err.Error()
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of the given kind wrapping err with a message.
func Wrap(kind ErrorKind, err error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: err}
}

// KindOf returns the kind of the first *Error in err's chain, or "" if none.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// RetryAtOf returns the RetryAt of the first *Error in err's chain that has
// one, or the zero time.
func RetryAtOf(err error) time.Time {
	var e *Error
	for err != nil {
		if errors.As(err, &e) {
			if !e.RetryAt.IsZero() {
				return e.RetryAt
			}
			err = e.Err
			continue
		}
		break
	}
	return time.Time{}
}
