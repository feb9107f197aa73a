package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/erpsync/erpsync-operator/controllers"
	"github.com/erpsync/erpsync-operator/internal/manifests"
)

// deployment is what the benchmark takes from the manager's Deployment.
type deployment struct {
	syncs      int   // --concurrent-syncs (the manager's default when absent)
	limit      int64 // the manager container's memory limit, bytes
	goMemLimit int64 // its GOMEMLIMIT, bytes; 0 when unset
}

// readDeployment reads the manager container of the Deployment in the
// (multi-document) manifest at path.
func readDeployment(path string) (deployment, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return deployment{}, fmt.Errorf("reading the manifest: %w", err)
	}
	return parseDeployment(b)
}

func parseDeployment(b []byte) (deployment, error) {
	objs, err := manifests.Decode(bytes.NewReader(b))
	if err != nil {
		return deployment{}, fmt.Errorf("parsing the manifest: %w", err)
	}
	u := manifests.First(objs, "Deployment")
	if u == nil {
		return deployment{}, errors.New("the manifest has no Deployment")
	}
	dep, err := manifests.As[appsv1.Deployment](u)
	if err != nil {
		return deployment{}, fmt.Errorf("parsing the Deployment: %w", err)
	}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		out := deployment{syncs: controllers.DefaultConcurrentSyncs}
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--concurrent-syncs="); ok {
				n, err := strconv.Atoi(v)
				if err != nil || n <= 0 {
					return deployment{}, fmt.Errorf("--concurrent-syncs=%q is not a positive number", v)
				}
				out.syncs = n
			}
		}
		lim := c.Resources.Limits.Memory()
		if lim == nil || lim.IsZero() {
			return deployment{}, errors.New("the manager container has no memory limit")
		}
		out.limit = lim.Value()
		for _, e := range c.Env {
			if e.Name != "GOMEMLIMIT" {
				continue
			}
			v, ok := strings.CutSuffix(e.Value, "MiB")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil || n <= 0 {
				return deployment{}, fmt.Errorf("GOMEMLIMIT %q is not a number of MiB", e.Value)
			}
			out.goMemLimit = n << 20
		}
		return out, nil
	}
	return deployment{}, errors.New("the Deployment has no manager container")
}
