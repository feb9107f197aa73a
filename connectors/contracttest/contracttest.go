// Package contracttest checks HTTP traffic against a vendor's published
// OpenAPI document: every request a connector sends and every response a
// simulator returns must conform to the operation the document describes.
// A vendor test wraps its simulator in Spec.Middleware during a full import
// and calls Spec.Check at the end.
//
// A mismatch that is the document's fault (a community-written document, an
// example that contradicts its own schema) is listed in an Allow entry with
// the reason; nothing is silenced wholesale: an allowance names one
// operation (or "*"), the side (request or response) and a substring of the
// validator's message, and Check reports allowances that never matched so the
// list stays short and true.
package contracttest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Side names what an Allow entry or a failure is about.
type Side string

const (
	// Request is the connector's request.
	Request Side = "request"
	// Response is the simulator's response.
	Response Side = "response"
)

// Allow excuses one known mismatch that is the document's fault.
type Allow struct {
	// Operation is the operationId the entry applies to, or "*" for every
	// operation (use sparingly: for a defect in a shared component).
	Operation string
	// Side is Request or Response.
	Side Side
	// Contains is a substring of the validator's message.
	Contains string
	// Reason says why the document, not our code, is wrong. Required.
	Reason string
}

// Ignore excuses requests under a path prefix that the document does not
// describe at all (for example Xero's identity endpoints, which live in
// another document), with the reason.
type Ignore struct {
	PathPrefix string
	Reason     string
}

// Options configure a Spec.
type Options struct {
	// File is the document's file name under ../shared/specs/.
	File string
	// ServerURL replaces the document's servers, so that the router matches
	// requests to the simulator (for example httptest.Server.URL + "/v1").
	ServerURL string
	Allow     []Allow
	Ignore    []Ignore
	// Paths, when set, restricts the document to these paths before it is
	// checked and routed: a large document may be invalid somewhere the
	// connector never goes (Xero's has attachment paths that conflict), and
	// traffic to any other path is then reported as undocumented.
	Paths []string
	// JSONHeaders names response headers whose value is a JSON document
	// (Katana's X-Pagination). OpenAPI 3 can only say so with a content
	// map, which some documents leave out, and the validator then reads the
	// header in the simple style (k,v,k,v) and stops before the body. These
	// headers are taken out of the validator's hands: they are decoded as
	// JSON and checked against the header's schema here.
	JSONHeaders []string
}

// Spec validates traffic against one loaded document.
type Spec struct {
	opts   Options
	doc    *openapi3.T
	router routers.Router

	// jsonHeaders holds the declarations of Options.JSONHeaders, by
	// response.
	jsonHeaders map[*openapi3.Response]map[string]*openapi3.Header

	mu        sync.Mutex
	failures  []string
	used      map[int]int
	validated map[string]int
	ignored   int
}

// RepoRoot returns the directory holding go.mod, walking up from the working
// directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// SpecsDirEnv names the directory of the vendors' OpenAPI documents; `make
// test` sets it from hack/fetch-specs.sh.
const SpecsDirEnv = "ERPSYNC_SPECS_DIR"

// SpecPath returns the path of a vendor OpenAPI document: in
// $ERPSYNC_SPECS_DIR when set, else in ../shared/specs beside the
// repository, else in the bin/specs cache that hack/fetch-specs.sh fills
// (downloading each file at its pinned commit and checking its SHA-256).
// When none holds it, the error says what to do.
func SpecPath(file string) (string, error) {
	if dir := os.Getenv(SpecsDirEnv); dir != "" {
		p := filepath.Join(dir, file)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s holds no %s: run hack/fetch-specs.sh or point it at a directory with the files of hack/specs.lock", SpecsDirEnv, dir, file)
		}
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	for _, p := range []string{
		filepath.Join(filepath.Dir(root), "shared", "specs", file),
		filepath.Join(root, "bin", "specs", file),
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the OpenAPI document %s is in neither ../shared/specs nor bin/specs: run hack/fetch-specs.sh (it downloads the pinned files of hack/specs.lock) or set %s to a directory holding them", file, SpecsDirEnv)
}

// Load loads and checks a document. A missing document fails the test with
// what to do (see SpecPath): the contract tests always run.
func Load(t testing.TB, opts Options) *Spec {
	t.Helper()
	path, err := SpecPath(opts.File)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range opts.Allow {
		if a.Reason == "" || a.Contains == "" || a.Operation == "" {
			t.Fatalf("allow-list entry %+v needs an operation, a message substring and a reason", a)
		}
	}
	s, err := New(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// New loads the document at path.
func New(path string, opts Options) (*Spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if opts.ServerURL != "" {
		doc.Servers = openapi3.Servers{{URL: opts.ServerURL}}
	}
	if len(opts.Paths) > 0 {
		keep := openapi3.NewPaths()
		for _, p := range opts.Paths {
			item := doc.Paths.Value(p)
			if item == nil {
				return nil, fmt.Errorf("%s has no path %s", path, p)
			}
			keep.Set(p, item)
		}
		doc.Paths = keep
	}
	// The router checks the document itself first. Both vendor documents
	// carry examples and defaults that contradict their own schemas (Xero:
	// numeric examples on string fields and "false" as the default of
	// booleans; Katana: a oneOf example that matches two branches). Examples
	// and defaults are documentation, not the contract traffic is held to.
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation(), openapi3.DisableSchemaDefaultsValidation())
	if err != nil {
		return nil, fmt.Errorf("building a router for %s: %w", path, err)
	}
	s := &Spec{opts: opts, doc: doc, router: router, used: map[int]int{}, validated: map[string]int{}, jsonHeaders: map[*openapi3.Response]map[string]*openapi3.Header{}}
	s.takeJSONHeaders()
	return s, nil
}

// takeJSONHeaders moves the JSON-valued headers out of every response of
// the document, keeping their declarations for jsonHeader.
func (s *Spec) takeJSONHeaders() {
	if len(s.opts.JSONHeaders) == 0 {
		return
	}
	for _, item := range s.doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.Responses == nil {
				continue
			}
			for _, ref := range op.Responses.Map() {
				if ref == nil || ref.Value == nil {
					continue
				}
				for name, h := range ref.Value.Headers {
					for _, want := range s.opts.JSONHeaders {
						if strings.EqualFold(name, want) && h != nil && h.Value != nil {
							if s.jsonHeaders[ref.Value] == nil {
								s.jsonHeaders[ref.Value] = map[string]*openapi3.Header{}
							}
							s.jsonHeaders[ref.Value][want] = h.Value
							delete(ref.Value.Headers, name)
						}
					}
				}
			}
		}
	}
}

// Doc returns the loaded document.
func (s *Spec) Doc() *openapi3.T { return s.doc }

// Middleware validates every request before next serves it and every
// response next returns. It never changes the traffic.
func (s *Spec) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, ig := range s.opts.Ignore {
			if strings.HasPrefix(r.URL.Path, ig.PathPrefix) {
				s.mu.Lock()
				s.ignored++
				s.mu.Unlock()
				next.ServeHTTP(w, r)
				return
			}
		}
		// The router matches on the full URL; a server request has only the
		// path, so rebuild what the client addressed.
		vr := r.Clone(r.Context())
		vr.URL = &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
		if u, err := url.Parse(s.opts.ServerURL); err == nil && u.Host != "" {
			vr.URL.Scheme, vr.URL.Host = u.Scheme, u.Host
		}
		route, params, err := s.router.FindRoute(vr)
		if err != nil {
			s.fail("", Request, fmt.Sprintf("%s %s: no operation in the document: %v", r.Method, r.URL.Path, err))
			next.ServeHTTP(w, r)
			return
		}
		op := route.Operation.OperationID
		in := &openapi3filter.RequestValidationInput{
			Request:    vr,
			PathParams: params,
			Route:      route,
			Options: &openapi3filter.Options{
				MultiError:         true,
				AuthenticationFunc: authenticate,
			},
		}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			s.fail(op, Request, err.Error())
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.hijacked {
			return
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 rec.status,
			Header:                 rec.Header(),
			Options:                &openapi3filter.Options{MultiError: true},
		}
		out.SetBodyBytes(rec.body.Bytes())
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			s.fail(op, Response, fmt.Sprintf("HTTP %d: %v", rec.status, err))
		}
		for _, name := range s.opts.JSONHeaders {
			if err := s.jsonHeader(route.Operation, rec.status, rec.Header(), name); err != nil {
				s.fail(op, Response, fmt.Sprintf("HTTP %d: JSON header %s: %v", rec.status, name, err))
			}
		}
		s.mu.Lock()
		s.validated[op]++
		s.mu.Unlock()
	})
}

// jsonHeader checks a JSON-valued response header against the schema the
// operation declares for it. A header the operation does not declare for the
// status is not checked; a declared, required one must be present.
func (s *Spec) jsonHeader(op *openapi3.Operation, status int, h http.Header, name string) error {
	resp := op.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return nil
	}
	decl := s.jsonHeaders[resp.Value][name]
	if decl == nil || decl.Schema == nil || decl.Schema.Value == nil {
		return nil
	}
	v := h.Get(name)
	if v == "" {
		if decl.Required {
			return errors.New("missing")
		}
		return nil
	}
	var doc any
	if err := json.Unmarshal([]byte(v), &doc); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return decl.Schema.Value.VisitJSON(doc)
}

// authenticate accepts a request that carries the credential the scheme
// asks for; whether the credential is right is the simulator's business.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	switch in.SecurityScheme.Type {
	case "http":
		if strings.EqualFold(in.SecurityScheme.Scheme, "bearer") && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return nil
		}
	case "oauth2", "openIdConnect":
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			return nil
		}
	case "apiKey":
		if in.SecurityScheme.In == "header" && r.Header.Get(in.SecurityScheme.Name) != "" {
			return nil
		}
	}
	return fmt.Errorf("no %s credential", in.SecurityScheme.Type)
}

func (s *Spec) fail(op string, side Side, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, part := range splitErrors(msg) {
		allowed := false
		for i, a := range s.opts.Allow {
			if a.Side == side && (a.Operation == "*" || a.Operation == op) && strings.Contains(part, a.Contains) {
				s.used[i]++
				allowed = true
				break
			}
		}
		if !allowed {
			s.failures = append(s.failures, fmt.Sprintf("%s %s: %s", op, side, part))
		}
	}
}

// splitErrors separates the messages of a multi-error so each is allowed or
// reported on its own.
func splitErrors(msg string) []string {
	parts := strings.Split(msg, " | ")
	out := parts[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validated returns how many exchanges were validated per operationId.
func (s *Spec) Validated() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.validated))
	for k, v := range s.validated {
		out[k] = v
	}
	return out
}

// Failures returns the mismatches no allowance excused.
func (s *Spec) Failures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.failures...)
}

// Check fails t for every unexcused mismatch and for every operation in
// wantOps that saw no traffic, and logs allowances that were used or never
// matched.
func (s *Spec) Check(t testing.TB, wantOps ...string) {
	t.Helper()
	fails := s.Failures()
	const maxShown = 20
	for i, f := range fails {
		if i == maxShown {
			t.Errorf("... and %d more contract mismatches", len(fails)-maxShown)
			break
		}
		t.Errorf("contract mismatch: %s", truncate(f, 2000))
	}
	validated := s.Validated()
	for _, op := range wantOps {
		if validated[op] == 0 {
			t.Errorf("operation %s was never exercised", op)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, a := range s.opts.Allow {
		if n := s.used[i]; n > 0 {
			t.Logf("allowed %d× (%s %s %q): %s", n, a.Operation, a.Side, a.Contains, a.Reason)
		} else {
			t.Logf("allow-list entry never matched (%s %s %q): drop it if the document was fixed", a.Operation, a.Side, a.Contains)
		}
	}
	ops := make([]string, 0, len(validated))
	for op, n := range validated {
		ops = append(ops, fmt.Sprintf("%s=%d", op, n))
	}
	sort.Strings(ops)
	t.Logf("validated exchanges: %s; ignored (not in the document): %d", strings.Join(ops, " "), s.ignored)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// recorder keeps a copy of the response for validation.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	hijacked    bool
	body        bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// Hijack lets a simulator drop the connection (a fault); the exchange is then
// not validated.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot hijack")
	}
	r.hijacked = true
	return hj.Hijack()
}

// Flush passes flushes through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
