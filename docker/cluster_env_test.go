// Package docker holds the images and compose cluster of docker/; its test
// checks what cluster.sh prints.
package docker

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestClusterEnvWorksFromAnyDirectory runs `docker/cluster.sh env` as a
// user would, from the repository root with a relative state directory,
// and checks that the commands it prints name every file and the script
// itself by absolute path, so they work pasted in any directory.
func TestClusterEnvWorksFromAnyDirectory(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	cmd := exec.Command("sh", "docker/cluster.sh", "env")
	cmd.Dir = ".."
	cmd.Env = append(cmd.Environ(), "CERTMESH_STATE=docker/state-test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh env: %v\n%s", err, out)
	}
	text := string(out)
	login := ""
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "log in at") {
			login = line
		}
	}
	if login == "" {
		t.Fatalf("no login command:\n%s", text)
	}
	for _, want := range []string{`--token "$("/`, "--dir alice"} {
		if !strings.Contains(login, want) {
			t.Errorf("login command lacks %q: %s", want, login)
		}
	}
	// Every file and program the commands name is an absolute path.
	for _, m := range regexp.MustCompile(`(--ca|--admin-cert|--admin-key) "?([^" ]+)`).FindAllStringSubmatch(text, -1) {
		if !filepath.IsAbs(m[2]) {
			t.Errorf("%s %s is relative to where cluster.sh ran", m[1], m[2])
		}
	}
	for _, m := range regexp.MustCompile(`"([^"]*certmesh)" (login|rotate|revoke|status)`).FindAllStringSubmatch(text, -1) {
		if !filepath.IsAbs(m[1]) {
			t.Errorf("the certmesh binary %s is relative", m[1])
		}
	}
	if strings.Contains(text, "--out") {
		t.Error("env prints login's old --out flag")
	}
}
