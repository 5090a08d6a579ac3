package jobs

import "syscall"

// shellAttr starts a shell command in a process group of its own, so that
// a timeout or cancel stops its children too, and kills the shell when
// sluice dies: the command of an attempt whose process died must not go on
// writing while the attempt is taken over.
func shellAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
