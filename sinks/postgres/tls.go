package postgres

import (
	"errors"
	"net/url"
	"strings"
)

// DefaultSSLMode is the TLS mode of a DSN that names none: the server's
// certificate must chain to a trusted root (the system's, or the CA file
// named by sslrootcert) and name the host connected to. libpq's own default,
// "prefer", encrypts without checking who answers, and falls back to plain
// text, so anyone on the path may read or alter what the CRM receives.
//
// A DSN that names sslmode (or the URL alias ssl=true), $PGSSLMODE, or a
// service (service=, $PGSERVICE, whose file may set sslmode) keeps its
// choice: an explicit sslmode=disable goes on working, for a database on
// loopback or a Unix socket (which never uses TLS whatever the mode).
const DefaultSSLMode = "verify-full"

// TLSMode says which TLS mode a sink's connections use, for the log line
// at start. It holds nothing secret.
type TLSMode struct {
	// Mode is the sslmode in force ("" when a service file decides).
	Mode string
	// Source is where it comes from: "default", "dsn", "PGSSLMODE" or
	// "service".
	Source string
	// RootCert says that the DSN or $PGSSLROOTCERT names a CA file (or
	// "system"), under which "require" verifies the chain too.
	RootCert bool
}

// Verified reports whether the server's certificate is checked: verify-ca
// and verify-full, and require with a root certificate (libpq's rule).
// Connections over a Unix socket use no TLS whatever the mode.
func (m TLSMode) Verified() bool {
	switch m.Mode {
	case "verify-ca", "verify-full":
		return true
	case "require":
		return m.RootCert
	}
	return false
}

// withDefaultSSLMode returns dsn with sslmode=DefaultSSLMode added when
// nothing names a mode, and the mode in force. getenv reads the
// environment, as pgx does.
func withDefaultSSLMode(dsn string, getenv func(string) string) (string, TLSMode, error) {
	params, isURL, err := dsnParams(dsn)
	if err != nil {
		return "", TLSMode{}, err
	}
	m := TLSMode{RootCert: params["sslrootcert"] != "" || getenv("PGSSLROOTCERT") != ""}
	if v, ok := params["sslmode"]; ok {
		m.Mode, m.Source = v, "dsn"
		return dsn, m, nil
	}
	if _, ok := params["service"]; ok || getenv("PGSERVICE") != "" {
		m.Source = "service"
		return dsn, m, nil
	}
	if v := getenv("PGSSLMODE"); v != "" {
		m.Mode, m.Source = v, "PGSSLMODE"
		return dsn, m, nil
	}
	m.Mode, m.Source = DefaultSSLMode, "default"
	if !isURL {
		return strings.TrimRight(dsn, " \t\n\r\v\f") + " sslmode=" + DefaultSSLMode, m, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", TLSMode{}, errors.New("the DSN is not a valid URL")
	}
	q := u.Query()
	q.Set("sslmode", DefaultSSLMode)
	u.RawQuery = q.Encode()
	return u.String(), m, nil
}

// dsnParams returns the parameters a DSN names, in its URL or
// keyword/value form, the last of a repeated key winning (as in pgx). The
// URL alias ssl=true stands for sslmode=require. Errors never quote the
// DSN.
func dsnParams(dsn string) (map[string]string, bool, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, true, errors.New("the DSN is not a valid URL")
		}
		out := map[string]string{}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return nil, true, errors.New("the DSN's URL query is malformed")
		}
		for k, vs := range q {
			if len(vs) > 0 {
				out[k] = vs[len(vs)-1]
			}
		}
		if _, ok := out["sslmode"]; !ok {
			if v, ok := out["ssl"]; ok && v == "true" {
				out["sslmode"] = "require"
			}
		}
		return out, true, nil
	}
	out, err := keywordValues(dsn)
	return out, false, err
}

const spaces = " \t\n\r\v\f"

// keywordValues parses the keyword/value form: key = value pairs separated
// by white space, a value either bare or single-quoted, a backslash
// escaping the next character in either.
func keywordValues(s string) (map[string]string, error) {
	out := map[string]string{}
	s = strings.TrimLeft(s, spaces)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("the DSN is not in keyword=value form")
		}
		key := strings.Trim(s[:eq], spaces)
		if key == "" || strings.ContainsAny(key, spaces) {
			return nil, errors.New("the DSN has a malformed keyword")
		}
		s = strings.TrimLeft(s[eq+1:], spaces)
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					val.WriteByte(s[i])
					continue
				}
				if s[i] == '\'' {
					closed = true
					break
				}
				val.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("the DSN has an unterminated quoted value")
			}
			s = s[i+1:]
		} else {
			i := 0
			for ; i < len(s) && !strings.ContainsRune(spaces, rune(s[i])); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			s = s[i:]
		}
		out[key] = val.String()
		s = strings.TrimLeft(s, spaces)
	}
	return out, nil
}
