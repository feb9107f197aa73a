package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// The admin API's record endpoints (issue 13): read, change, mark deleted
// and hard-delete any record of a vendor's dataset, remove one child from
// its parent, and make the vendor's lists lie (the list share). Records are
// named by dataset kind (simkit.AdminKinds) and dataset id, which every
// vendor renders in its own ids; GET .../records/{kind} lists them with
// their natural keys (code, SKU or number).
//
//	GET    /vendors/{vendor}/records/{kind}
//	GET    /vendors/{vendor}/records/{kind}/{id}
//	PATCH  /vendors/{vendor}/records/{kind}/{id}    {"deleted": true|false, "quiet": bool} or {} (a touch)
//	DELETE /vendors/{vendor}/records/{kind}/{id}
//	DELETE /vendors/{vendor}/records/customers/{id}/contacts/{contactID}
//	DELETE /vendors/{vendor}/records/products/{id}/prices/{customerID}
//	DELETE /vendors/{vendor}/records/products/{id}/stock/{warehouseCode}
//	GET    /vendors/{vendor}/list-share
//	POST   /vendors/{vendor}/list-share            {"percent": 0..100}

// maxAdminBody bounds the JSON body of an admin request.
const maxAdminBody = 4 << 10

// quietDeleter is a simulator with its own quiet soft delete (Katana:
// deleted_at set, updated_at unchanged).
type quietDeleter interface {
	DeleteQuietly(id string) bool
}

// recordPatch is the body of PATCH .../records/{kind}/{id}.
type recordPatch struct {
	// Deleted sets (true) or clears (false) the vendor's marker; absent,
	// the record is only stamped modified (a touch).
	Deleted *bool `json:"deleted"`
	// Quiet sets the marker without moving the record's modified time
	// (through the simulator's own quiet delete where it has one).
	Quiet bool `json:"quiet"`
}

// listShare is the body of POST .../list-share and the answer of both.
type listShare struct {
	Percent *int `json:"percent"`
}

func (f *fleet) recordRoutes(mux *http.ServeMux) {
	withVendor := func(h func(w http.ResponseWriter, r *http.Request, v *runningVendor)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := f.find(r.PathValue("vendor"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			h(w, r, v)
		}
	}
	mux.HandleFunc("GET /vendors/{vendor}/records/{kind}", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		refs, err := v.sim.Dataset().Refs(r.PathValue("kind"))
		if err != nil {
			datasetError(w, err)
			return
		}
		writeJSON(w, refs)
	}))
	mux.HandleFunc("GET /vendors/{vendor}/records/{kind}/{id}", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		rec, err := v.sim.Dataset().Record(r.PathValue("kind"), r.PathValue("id"))
		if err != nil {
			datasetError(w, err)
			return
		}
		writeJSON(w, rec)
	}))
	mux.HandleFunc("PATCH /vendors/{vendor}/records/{kind}/{id}", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		var p recordPatch
		if !readBody(w, r, &p) {
			return
		}
		ds, kind, id := v.sim.Dataset(), r.PathValue("kind"), r.PathValue("id")
		if p.Quiet && p.Deleted == nil {
			http.Error(w, `"quiet" needs "deleted"`, http.StatusBadRequest)
			return
		}
		var (
			rec any
			err error
		)
		switch {
		case p.Deleted == nil:
			rec, err = ds.Touch(kind, id)
		case p.Quiet && *p.Deleted:
			if q, ok := v.sim.(quietDeleter); ok {
				if _, err = ds.Record(kind, id); err == nil && !q.DeleteQuietly(id) {
					http.Error(w, fmt.Sprintf("%s cannot delete %s %q quietly (not a kind it marks, or already deleted)", v.name, kind, id), http.StatusConflict)
					return
				}
				if err == nil {
					rec, err = ds.Record(kind, id)
				}
				break
			}
			rec, err = ds.Mark(kind, id, true, false)
		default:
			rec, err = ds.Mark(kind, id, *p.Deleted, !p.Quiet)
		}
		if err != nil {
			datasetError(w, err)
			return
		}
		writeJSON(w, rec)
	}))
	mux.HandleFunc("DELETE /vendors/{vendor}/records/{kind}/{id}", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		rec, err := v.sim.Dataset().Remove(r.PathValue("kind"), r.PathValue("id"))
		if err != nil {
			datasetError(w, err)
			return
		}
		writeJSON(w, rec)
	}))
	child := func(remove func(ds *simkit.Dataset, parent, child string) error) http.HandlerFunc {
		return withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
			if err := remove(v.sim.Dataset(), r.PathValue("id"), r.PathValue("child")); err != nil {
				datasetError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	mux.HandleFunc("DELETE /vendors/{vendor}/records/customers/{id}/contacts/{child}", child((*simkit.Dataset).RemoveContact))
	mux.HandleFunc("DELETE /vendors/{vendor}/records/products/{id}/prices/{child}", child((*simkit.Dataset).RemoveSpecialPrice))
	mux.HandleFunc("DELETE /vendors/{vendor}/records/products/{id}/stock/{child}", child((*simkit.Dataset).RemoveStock))

	mux.HandleFunc("GET /vendors/{vendor}/list-share", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		pct := int(v.share.Load())
		writeJSON(w, listShare{Percent: &pct})
	}))
	mux.HandleFunc("POST /vendors/{vendor}/list-share", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		var s listShare
		if !readBody(w, r, &s) {
			return
		}
		if s.Percent == nil || *s.Percent < 0 || *s.Percent > 100 {
			http.Error(w, `want {"percent": N} with N from 0 to 100 (0 and 100: whole lists)`, http.StatusBadRequest)
			return
		}
		v.sim.SetListShare(*s.Percent)
		v.share.Store(int32(*s.Percent))
		writeJSON(w, s)
	}))
}

// readBody decodes a bounded JSON body into out, answering 400 or 413 and
// returning false when it does not decode. An empty body decodes as {}.
func readBody(w http.ResponseWriter, r *http.Request, out any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(out)
	if errors.Is(err, io.EOF) {
		return true
	}
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, fmt.Sprintf("request body over %d bytes", maxAdminBody), http.StatusRequestEntityTooLarge)
		return false
	case err != nil:
		http.Error(w, "bad JSON body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// datasetError answers a dataset error: 400 for an unknown kind, 404 for a
// missing record.
func datasetError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, simkit.ErrUnknownKind):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, simkit.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
