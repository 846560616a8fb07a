package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/devcluster"
)

// TestDevPinsItsPortsAndStopsQuickly runs certmesh dev as a process with
// --base-port, checks that its endpoints are on the ports it was given,
// and that Ctrl-C ends it within 2 s (it waited for every node's mesh
// leave, 3 s or more, before).
func TestDevPinsItsPortsAndStopsQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a development cluster")
	}
	base := freePortRange(t, devcluster.PortsNeeded(3, 1))
	cmd := exec.Command(os.Args[0], "dev", "--routers-per-region", "1", "--base-port", fmt.Sprint(base))
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })

	var printed []string
	deadline := time.After(90 * time.Second)
wait:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("certmesh dev ended early:\n%s", strings.Join(printed, "\n"))
			}
			printed = append(printed, line)
			if strings.HasPrefix(line, "running; Ctrl-C") {
				break wait
			}
		case <-deadline:
			t.Fatalf("certmesh dev not running after 90s:\n%s", strings.Join(printed, "\n"))
		}
	}
	all := strings.Join(printed, "\n")
	// The issuer first, the upstream, then ctrl-us-east's mesh, API and metrics.
	for _, want := range []string{
		fmt.Sprintf("oidc issuer  http://127.0.0.1:%d", base),
		fmt.Sprintf("upstream     http://127.0.0.1:%d", base+1),
		fmt.Sprintf("api https://127.0.0.1:%d  metrics http://127.0.0.1:%d  mesh 127.0.0.1:%d", base+3, base+4, base+2),
	} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
	sent := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("certmesh dev still running 10s after Ctrl-C")
	}
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("certmesh dev took %v to stop after Ctrl-C, want at most 2s", took.Round(time.Millisecond))
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after Ctrl-C, want 0", code)
	}
}

func TestDevBasePortRange(t *testing.T) {
	checkFailure(t, runCLI("dev", "--base-port", "65530"), 2, "--base-port")
	checkFailure(t, runCLI("dev", "--base-port", "80"), 2, "--base-port")
}

// freePortRange returns the first of n consecutive loopback ports free for
// TCP and UDP now, below Linux's ephemeral range (32768 on), so that the
// sockets other tests open meanwhile are unlikely to take one.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	free := func(port int) bool {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		defer l.Close()
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		u.Close()
		return true
	}
try:
	for range 50 {
		base := 20000 + rand.IntN(12000-n)
		for p := base; p < base+n; p++ {
			if !free(p) {
				continue try
			}
		}
		return base
	}
	t.Fatalf("no %d free consecutive ports", n)
	return 0
}
