//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenNamesTheMissingCapability runs Open in a child process from which
// setpriv(1) removed capabilities, and checks that the error names them.
func TestOpenNamesTheMissingCapability(t *testing.T) {
	requireSampling(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is not installed: cannot drop capabilities for a child: %v", err)
	}
	caps, err := effectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	if !caps.has(capBPF) || !caps.has(capPerfmon) {
		t.Skip("kernel or process without CAP_BPF/CAP_PERFMON (before 5.8): CAP_SYS_ADMIN is the only capability to drop")
	}
	for _, tc := range []struct {
		drop, want string
	}{
		{"-perfmon,-sys_admin", "needs CAP_PERFMON"},
		{"-bpf,-sys_admin", "needs CAP_BPF"},
		{"-bpf,-perfmon,-sys_admin", "needs CAP_BPF and CAP_PERFMON"},
	} {
		t.Run("without "+tc.drop+" the error says "+tc.want, func(t *testing.T) {
			cmd := exec.Command(setpriv, "--inh-caps=-all", "--bounding-set="+tc.drop, "--", os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=open")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			got := strings.TrimSpace(string(out))
			if !strings.HasPrefix(got, "open error:") || !strings.Contains(got, tc.want) {
				t.Errorf("child Open: %q, want an error that says %q", got, tc.want)
			}
			if strings.HasSuffix(got, "operation not permitted") && !strings.Contains(got, "CAP_") {
				t.Errorf("bare permission error: %q", got)
			}
		})
	}
}

func TestErrorsNameWhatIsMissing(t *testing.T) {
	const all = capSet(1<<capBPF | 1<<capPerfmon | 1<<capSysAdmin)
	limited := memlock{limited: true, limit: 64 << 10, cause: errors.New("failed to set memlock rlimit: operation not permitted")}
	eperm := fmt.Errorf("map create: %w", unix.EPERM)
	for _, tc := range []struct {
		name  string
		err   error
		wants []string
	}{
		{"EPERM without CAP_BPF names CAP_BPF", loadError(eperm, 1<<capPerfmon, nil, memlock{}), []string{"needs CAP_BPF ", "operation not permitted"}},
		{"EPERM without CAP_PERFMON names CAP_PERFMON", loadError(eperm, 1<<capBPF, nil, memlock{}), []string{"needs CAP_PERFMON"}},
		{"CAP_SYS_ADMIN alone is enough (kernels before 5.8)", loadError(eperm, 1<<capSysAdmin, nil, limited), []string{"RLIMIT_MEMLOCK is 64 KiB", "CAP_SYS_RESOURCE on kernels older than 5.11"}},
		{"EPERM with the capabilities on an old kernel blames RLIMIT_MEMLOCK", loadError(eperm, all, nil, limited), []string{"RLIMIT_MEMLOCK", "needs CAP_SYS_RESOURCE on kernels older than 5.11"}},
		{"EPERM with capabilities and memcg accounting blames a security policy", loadError(eperm, all, nil, memlock{}), []string{"security policy"}},
		{"a missing capability is named before the memlock limit", loadError(eperm, 0, nil, limited), []string{"needs CAP_BPF and CAP_PERFMON"}},
		{"other load errors are wrapped as they are", loadError(unix.EINVAL, all, nil, memlock{}), []string{"loading the BPF sampler: invalid argument"}},
		{"no PMU for a hardware event", perfOpenError("instructions", 0, unix.ENOENT, all, nil), []string{"hardware event instructions is not available on this machine (no PMU): use cpu-clock"}},
		{"perf_event_open EACCES names CAP_PERFMON and the paranoid sysctl", perfOpenError("cpu-clock", 1, unix.EACCES, 1<<capBPF, nil), []string{"missing CAP_PERFMON", "perf_event_paranoid", "CPU 1"}},
		{"an offline CPU is named", perfOpenError("cpu-clock", 7, unix.ENODEV, all, nil), []string{"CPU 7", "offline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.wants {
				if !strings.Contains(tc.err.Error(), w) {
					t.Errorf("%q does not say %q", tc.err, w)
				}
			}
		})
	}
	if err := loadError(eperm, 0, nil, memlock{}); !errors.Is(err, unix.EPERM) {
		t.Errorf("%v does not wrap EPERM", err)
	}
}
