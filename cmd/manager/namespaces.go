package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errNamespacesChanged stops the manager when the set of namespaces its
// --watch-namespace-selector selects has changed: the cache is built for one
// set, so the process restarts (the Deployment starts it again) to watch the
// new one.
var errNamespacesChanged = errors.New("the namespaces selected by --watch-namespace-selector changed")

// namespaceScope is the namespaces the manager's caches are limited to:
// those listed, plus those whose labels match the selector.
type namespaceScope struct {
	listed   []string
	selector labels.Selector
}

// parseNamespaceScope reads --watch-namespaces (and the older
// --watch-namespace) and --watch-namespace-selector; nil when neither limits
// anything (every namespace is watched).
func parseNamespaceScope(list, single, selector string) (*namespaceScope, error) {
	var s namespaceScope
	for _, ns := range append(strings.Split(list, ","), single) {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(s.listed, ns) {
			s.listed = append(s.listed, ns)
		}
	}
	if strings.TrimSpace(selector) != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("--watch-namespace-selector: %w", err)
		}
		if sel.Empty() {
			return nil, errors.New("--watch-namespace-selector selects every namespace; leave it unset instead")
		}
		s.selector = sel
	}
	if len(s.listed) == 0 && s.selector == nil {
		return nil, nil
	}
	return &s, nil
}

// resolve returns the namespaces in scope now, sorted.
func (s *namespaceScope) resolve(ctx context.Context, c client.Reader) ([]string, error) {
	set := map[string]bool{}
	for _, ns := range s.listed {
		set[ns] = true
	}
	if s.selector != nil {
		var list corev1.NamespaceList
		if err := c.List(ctx, &list, client.MatchingLabelsSelector{Selector: s.selector}); err != nil {
			return nil, fmt.Errorf("listing the namespaces --watch-namespace-selector selects: %w", err)
		}
		for _, ns := range list.Items {
			if ns.DeletionTimestamp.IsZero() {
				set[ns.Name] = true
			}
		}
	}
	out := slices.Collect(maps.Keys(set))
	sort.Strings(out)
	return out, nil
}

// waitForNamespaces resolves the scope until it names at least one
// namespace (an empty set would mean every namespace to the cache).
func (s *namespaceScope) waitForNamespaces(ctx context.Context, c client.Reader, every time.Duration, log logr.Logger) ([]string, error) {
	for {
		nss, err := s.resolve(ctx, c)
		if err != nil {
			return nil, err
		}
		if len(nss) > 0 {
			return nss, nil
		}
		log.Info("no namespace is selected yet: waiting for one to be labelled", "selector", s.selector.String(), "every", every)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(every):
		}
	}
}

// namespaceWatcher is a manager Runnable that re-resolves the scope every
// interval and stops the manager with errNamespacesChanged when the set
// differs from the one the caches were built for. It runs on every replica
// (a standby must watch the same set as the leader).
type namespaceWatcher struct {
	scope    *namespaceScope
	reader   client.Reader
	current  []string
	interval time.Duration
	log      logr.Logger
}

func (w *namespaceWatcher) NeedLeaderElection() bool { return false }

func (w *namespaceWatcher) Start(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		nss, err := w.scope.resolve(ctx, w.reader)
		if err != nil {
			// Transient: keep the current set, try again next time.
			w.log.Error(err, "re-reading the selected namespaces")
			continue
		}
		if len(nss) > 0 && !slices.Equal(nss, w.current) {
			w.log.Info("the selected namespaces changed: restarting to watch them", "was", len(w.current), "now", len(nss))
			return errNamespacesChanged
		}
	}
}
