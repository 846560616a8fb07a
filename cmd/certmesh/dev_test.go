package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDevPinsItsPortsAndStopsQuickly runs certmesh dev as a process with
// --base-port, checks that its endpoints are on the ports it was given,
// and that Ctrl-C ends it within 2 s (it waited for every node's mesh
// leave, 3 s or more, before).
func TestDevPinsItsPortsAndStopsQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a development cluster")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if base > 65000 {
		base -= 500
	}
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
