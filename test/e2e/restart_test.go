package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// TestKillDuringInitialImportResumes SIGKILLs the manager in the middle of a
// large initial import (Cin7 Core at its real 60 calls a minute) and starts it
// again: the import resumes from its checkpoint, and the CRM ends up exactly
// equal to the dataset.
func TestKillDuringInitialImportResumes(t *testing.T) {
	sim, err := startSim(context.Background(), "erpsim-large", "--vendors", "cin7core", "--products", "5000", "--customers", "200", "--orders", "400")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sim.proc.Stop(5 * time.Second) }()
	v, _ := findVendor(sim, "cin7core")
	allowAndRestart(t, v.BaseURL)

	ns := newNamespace(t, "large")
	yaml := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: cin7core
  labels:
    erpsync.io/credentials: "true"
stringData:
  accountId: %q
  applicationKey: %q
---
apiVersion: erpsync.io/v1alpha1
kind: ErpSync
metadata:
  name: large
spec:
  companyId: LARGE-CO
  interval: 1h
  connector:
    type: cin7core
    baseURL: %q
    credentialsRef:
      name: cin7core
`, v.Credentials["accountId"], v.Credentials["applicationKey"], v.BaseURL)
	if out, err := env.cp.RunStdin(context.Background(), strings.NewReader(yaml), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	// Wait until a few pages are checkpointed, then kill the manager.
	var killedAt erpsyncJSON
	eventually(t, 3*time.Minute, "a checkpoint past page 1", func() bool {
		killedAt, _ = getErpSync(t, ns, "large")
		for _, e := range killedAt.Status.Entities {
			if e.Checkpoint != nil && e.Checkpoint.Page >= 2 {
				return killedAt.Status.Phase == "Syncing"
			}
		}
		return false
	})
	if err := env.mgr.Kill(); err != nil {
		t.Fatal(err)
	}
	callsBeforeKill := sim.vendor(t, "cin7core").Requests
	// What the dead manager left in status is what a restart can resume
	// from: the calls whose pages it had checkpointed. The calls after that
	// (at most one checkpoint interval of pages, and the one in flight) are
	// the only ones a resume may repeat.
	atDeath, _ := getErpSync(t, ns, "large")
	if atDeath.Status.Progress == nil || atDeath.Status.Progress.APICalls == 0 {
		t.Fatalf("the killed sync left no progress in status: %+v", atDeath.Status)
	}
	checkpointed := atDeath.Status.Progress.APICalls
	t.Logf("killed the manager after %d calls, %d of them checkpointed; entities: %+v", callsBeforeKill, checkpointed, atDeath.Status.Entities)

	env.mgr, err = startManager()
	if err != nil {
		t.Fatal(err)
	}
	var o erpsyncJSON
	eventually(t, 5*time.Minute, "the import to finish after the restart", func() bool {
		o, _ = getErpSync(t, ns, "large")
		st, _, _ := o.condition("Ready")
		return st == "True" && o.Status.Phase == "Succeeded"
	})
	interrupted := sim.vendor(t, "cin7core").Requests

	// Nothing lost, nothing duplicated: the CRM equals the dataset.
	counts := crmCounts(t)["LARGE-CO"]
	for kind, want := range v.Expected {
		if got := counts[model.Kind(kind)]; got != want {
			t.Errorf("%d %s in the CRM, the dataset has %d", got, kind, want)
		}
	}

	// Resumed, not restarted: the interrupted import cost no more calls than
	// an uninterrupted one (measured by a full resync of the same data) plus
	// the calls made after the last checkpoint the dead manager wrote. A
	// restart from scratch would repeat all callsBeforeKill.
	sim.admin(t, "POST", "/vendors/cin7core/stats/reset", nil)
	kubectl(t, "annotate", "-n", ns, "erpsync/large", "erpsync.io/fullResyncAt=measure", "--overwrite")
	eventually(t, 5*time.Minute, "the full resync", func() bool {
		o, _ = getErpSync(t, ns, "large")
		return o.Status.LastHandledFullResyncAt == "measure" && o.Status.Phase == "Succeeded"
	})
	full := sim.vendor(t, "cin7core").Requests
	repeatable := callsBeforeKill - checkpointed
	t.Logf("interrupted import: %d calls; uninterrupted: %d; made after the last checkpoint: %d", interrupted, full, repeatable)
	if interrupted > full+repeatable {
		t.Errorf("the interrupted import made %d calls, an uninterrupted one %d, and only %d were made after the last checkpoint: it repeated checkpointed pages", interrupted, full, repeatable)
	}
	if repeatable >= callsBeforeKill {
		t.Errorf("nothing of the %d calls before the kill was checkpointed", callsBeforeKill)
	}
}
