package docs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// step is one command of a session as it is run.
type step struct {
	cmd  command
	rule rule
	text string // what the shell runs
}

// outcome is what became of one step.
type outcome struct {
	ran    bool
	status int
	output string
}

// runSession runs steps in one bash process in dir, one after the other, like a reader
// typing them into one terminal: variables, the working directory and background jobs
// carry over. Each step's output goes to its own file; its exit status is recorded.
// A failing step does not stop the session. When the script ends (or ctx expires),
// every process of the session's process group is ended.
func runSession(ctx context.Context, t *testing.T, dir string, env []string, steps []step) []outcome {
	t.Helper()
	logs := t.TempDir()
	statusPath := filepath.Join(logs, "status")
	var script strings.Builder
	script.WriteString("set -u\n")
	fmt.Fprintf(&script, "cd %q || exit 99\n", dir)
	fmt.Fprintf(&script, "exec 7>%q\n", statusPath)
	for i, s := range steps {
		fmt.Fprintf(&script, "# %s\n{\n%s\n} >%q 2>&1 </dev/null\n", s.cmd, s.text, filepath.Join(logs, strconv.Itoa(i)))
		if s.rule.after != "" {
			fmt.Fprintf(&script, "__rc=$?; if [ $__rc -eq 0 ]; then { %s; } >>%q 2>&1 </dev/null; __rc=$?; fi; echo \"%d $__rc\" >&7\n",
				s.rule.after, filepath.Join(logs, strconv.Itoa(i)), i)
		} else {
			fmt.Fprintf(&script, "echo \"%d $?\" >&7\n", i)
		}
	}
	scriptPath := filepath.Join(logs, "session.sh")
	if err := os.WriteFile(scriptPath, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(filepath.Join(logs, "session.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("bash", scriptPath)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the session shell: %v", err)
	}
	pgid := cmd.Process.Pid
	endGroup := func() {
		// Background jobs (sample-app, the agent) live in the session's process group.
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if syscall.Kill(-pgid, 0) != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	t.Cleanup(endGroup)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("session shell: %v", err)
		}
	case <-ctx.Done():
		t.Errorf("the session did not finish in time (%v); log in %s", ctx.Err(), logs)
		endGroup()
		<-done
	}
	endGroup()

	results := make([]outcome, len(steps))
	f, err := os.Open(statusPath)
	if err != nil {
		t.Fatalf("session status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var i, status int
		if _, err := fmt.Sscanf(sc.Text(), "%d %d", &i, &status); err != nil || i < 0 || i >= len(steps) {
			t.Fatalf("session status line %q", sc.Text())
		}
		b, _ := os.ReadFile(filepath.Join(logs, strconv.Itoa(i)))
		results[i] = outcome{ran: true, status: status, output: string(b)}
	}
	return results
}

// prepare turns a command and its rule into the text the session runs.
func prepare(c command, r rule) (string, error) {
	text := c.Text
	if r.rewrite[0] != "" {
		re := regexp.MustCompile(r.rewrite[0])
		if !re.MatchString(text) {
			return "", fmt.Errorf("%s: the rule's rewrite %q does not apply", c, r.rewrite[0])
		}
		text = re.ReplaceAllString(text, r.rewrite[1])
	}
	if r.timeout > 0 {
		if strings.Contains(text, "\n") || strings.ContainsAny(text, "|;&") {
			return "", fmt.Errorf("%s: a timeout applies to a simple command only", c)
		}
		text = fmt.Sprintf("timeout -s INT %ds %s", int(r.timeout.Seconds()), text)
	}
	return text, nil
}

// ok reports whether a step's exit status counts as success.
func ok(r rule, status int) bool {
	return status == 0 || (r.timeout > 0 && status == 124)
}
