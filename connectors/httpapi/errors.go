package httpapi

import (
	"errors"
	"fmt"
	"net/http"
)

// StatusError is an HTTP answer the client did not accept. It names the
// request by method and path only: never the query string, host credentials
// or the body, which may carry secrets or record data.
type StatusError struct {
	Method     string
	Path       string
	StatusCode int
	// Attempts is how many times the request was sent.
	Attempts int
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Attempts > 1 {
		s += fmt.Sprintf(" after %d attempts", e.Attempts)
	}
	return s
}

// StatusCode returns the HTTP status of the first StatusError in err's chain,
// or 0.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}
