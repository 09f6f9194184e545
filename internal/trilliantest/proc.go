package trilliantest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// binaries are the paths of the programs an Env runs.
type binaries struct {
	installDB, mariadbd, logServer, logSigner string
}

// findBinaries looks every program up on PATH and in $(go env GOPATH)/bin,
// and names all that are missing.
func findBinaries() (binaries, error) {
	var missing []string
	find := func(name string, dirs ...string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range dirs {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p
			}
		}
		missing = append(missing, name)
		return ""
	}
	// Debian installs mariadbd in /usr/sbin, which a non-login root shell
	// may not have on PATH.
	sbin := []string{"/usr/sbin", "/usr/local/sbin"}
	var gobin []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			gobin = append(gobin, filepath.Join(dir, "bin"))
		}
	}
	b := binaries{
		installDB: find("mariadb-install-db", sbin...),
		mariadbd:  find("mariadbd", sbin...),
		logServer: find("trillian_log_server", gobin...),
		logSigner: find("trillian_log_signer", gobin...),
	}
	if len(missing) > 0 {
		return b, &missingError{what: strings.Join(missing, ", ") + " not found"}
	}
	return b, nil
}

// proc is one running child process, in its own process group, with its
// output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // its exit status, once done is closed
}

func (e *Env) logPath(name string) string { return filepath.Join(e.Dir, name+".log") }

// startProc starts bin with args, appending its output to its log.
func (e *Env) startProc(name, bin string, args ...string) (*proc, error) {
	log, err := os.OpenFile(e.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "=== %s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error when p has exited.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited at start (%v); see its log below", p.name, p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM to p's process group and waits up to 30 s for it to
// exit, then kills it.
func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
	// Whatever else is left in its group.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// kill sends SIGKILL to p's process group and waits for p to exit.
func (p *proc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
