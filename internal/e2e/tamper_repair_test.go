package e2e

import (
	"errors"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// sinkCmd runs `flowker-audit sink ARGS` with the scenario's configuration (verify.yaml: the
// data dir and the store) and returns its output and exit code.
func (r *tamperRun) sinkCmd(args ...string) (string, int) {
	r.t.Helper()
	out, err := exec.Command(testenv.Binary(r.t), append(append([]string{"sink"}, args...), "--config", r.cliConfig())...).CombinedOutput()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("sink %v: %v\n%s", args, err, out)
	}
	r.t.Logf("%s `sink %s` (exit %d):\n%s", r.st.name(), strings.Join(args, " "), code, out)
	return string(out), code
}

// repairConflict resolves the store's conflict with the operator's command, as OPERATIONS
// describes: refused while the sidecar runs; with it stopped, status names the conflict, a dry
// run changes nothing, --apply repairs; then the sidecar resumes delivery to the store and every
// genuine event ends up in it, the chain valid.
func (r *tamperRun) repairConflict(wantInStatus ...string) {
	t := r.t
	t.Helper()
	if out, code := r.sinkCmd("status"); code != 3 || !strings.Contains(out, "the sidecar is running") {
		t.Fatalf("sink status while the sidecar runs: exit %d\n%s", code, out)
	}
	r.stop()
	out, code := r.sinkCmd("status")
	if code != 1 || !strings.Contains(out, "sink store (") || !strings.Contains(out, "CONFLICT") || !strings.Contains(out, "flowker-audit sink repair store") {
		t.Fatalf("sink status: exit %d\n%s", code, out)
	}
	for _, w := range wantInStatus {
		if !strings.Contains(out, w) {
			t.Fatalf("sink status does not say %q:\n%s", w, out)
		}
	}
	if out, code := r.sinkCmd("repair", "store"); code != 1 || !strings.Contains(out, "dry run: nothing was changed") {
		t.Fatalf("sink repair (dry run): exit %d\n%s", code, out)
	}
	if out2, code := r.sinkCmd("status"); code != 1 || withoutLogs(out2) != withoutLogs(out) {
		t.Fatalf("the dry run changed the store: exit %d\n%s", code, out2)
	}
	if out, code := r.sinkCmd("repair", "store", "--apply"); code != 0 || !strings.Contains(out, "sink store agrees with the journal") {
		t.Fatalf("sink repair --apply: exit %d\n%s", code, out)
	}
	if out, code := r.sinkCmd("status"); code != 0 || strings.Contains(out, "CONFLICT") {
		t.Fatalf("sink status after the repair: exit %d\n%s", code, out)
	}
	r.start()
	r.write(1)
	r.env.WaitDelivered(60 * time.Second)
	if c, why := r.conflict(); c {
		t.Fatalf("still in conflict after the repair: %s", why)
	}
	r.noGenuineEventLost()
	// Every genuine event is in the store now (none only in the journal), and the chain is valid
	// up to the journal's head.
	stored := map[string]bool{}
	for _, e := range r.env.AllEvents() {
		stored[e.EventID] = true
		if strings.HasPrefix(e.ResourceID, "forged-") {
			t.Fatalf("a forged row survived the repair: sequence %d", e.Sequence)
		}
	}
	for _, id := range r.genuine {
		if !stored[id] {
			t.Fatalf("genuine event %s is not in the store after the repair", id)
		}
	}
	last := r.env.App.Journal().Last()
	v := r.verifyAPI(r.genuine[len(r.genuine)-1])
	if !v.IsValid || v.TotalChecked != last {
		t.Fatalf("verify after the repair (journal last %d): %+v", last, v)
	}
	if out, code := r.cli(); code != 0 {
		t.Fatalf("CLI verify after the repair:\n%s", out)
	}
}

// withoutLogs drops the plugins' log lines (time=...) from a command's output, and the head
// line (a plugin's conflict message lists duplicate rows in the order the store returned them),
// and sorts the rest.
func withoutLogs(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "time=") && !strings.HasPrefix(l, "  head:") {
			keep = append(keep, l)
		}
	}
	sort.Strings(keep)
	return strings.Join(keep, "\n")
}
