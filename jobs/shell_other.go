//go:build !linux

package jobs

import "syscall"

// shellAttr starts a shell command in a process group of its own, so that
// a timeout or cancel stops its children too. (Only Linux can kill the
// shell when sluice dies; elsewhere the command of a dead process's attempt
// runs to its end, writing to a temporary file of its own.)
func shellAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
