// Package soak_test is the overload soak of issue #8 (item 11): 256
// concurrent clients drive one endpoint whose 300ms deadline covers three
// upstreams (one always fast, one that hangs on 10% of calls, one in a 30%
// 5xx storm behind a breaker), and the test asserts that the healthy
// upstream never fails and that the gateway's goroutines return to their
// baseline afterwards.
//
// It is skipped unless MANIFOLD_SOAK=1, so the normal suite stays fast (it
// still compiles there). Everything listens on 127.0.0.1; every process it
// starts is killed by PID when the test ends. See soak_test.go for the knobs.
//
// The gateway is the release-built binary (scripts/build.sh), as in e2e, so
// its scheduler, GC and sockets are those of production and not shared with
// the load generator. Each upstream is a separate process too: this test
// binary re-executed in an upstream role (see TestMain), so a hanging
// upstream's goroutines and timers never share a scheduler with the fast one.
package soak_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// binary is the manifold executable built by TestMain when the soak runs.
var binary string

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		// This process is one of the soak's upstreams, not a test run.
		if err := serveUpstream(role); err != nil {
			fmt.Fprintf(os.Stderr, "soak upstream %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("MANIFOLD_SOAK") == "" {
		goleak.VerifyTestMain(m) // TestSoak skips itself: nothing to build
		return
	}
	if binary = os.Getenv("MANIFOLD_SOAK_BINARY"); binary != "" {
		// A prebuilt gateway, e.g. an older commit's, for a comparison.
		goleak.VerifyTestMain(m)
		return
	}
	tmp, err := os.MkdirTemp("", "manifold-soak-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		os.Exit(1)
	}
	binary = filepath.Join(tmp, "manifold")
	root, err := filepath.Abs("..")
	if err == nil {
		cmd := releaseBuild(filepath.Join(root, "scripts", "build.sh"), binary)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION=soak")
		var out []byte
		if out, err = cmd.CombinedOutput(); err != nil {
			err = fmt.Errorf("scripts/build.sh: %v\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: build: %v\n", err)
		_ = os.RemoveAll(tmp)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { _ = os.RemoveAll(tmp) }))
}

// releaseBuild returns the command that runs the release build script to
// write out. e2e's TestMain and the root package's TestImageRuns build the
// same binary with the same script, and go test runs packages at once; on
// a cold build cache concurrent builds each compile every package (the
// cache does not share work in progress between processes). All of them
// therefore take the same lock (flock(1), where it exists): whichever
// comes later links from a warm cache. The lock goes with the flock
// process, however the build ends.
func releaseBuild(script, out string) *exec.Cmd {
	if flock, err := exec.LookPath("flock"); err == nil {
		return exec.Command(flock, filepath.Join(os.TempDir(), "manifold-release-build.lock"), script, out)
	}
	return exec.Command(script, out)
}
