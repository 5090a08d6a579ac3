//go:build unix

package pipeline

import (
	"os"
	"syscall"
)

// identities tells whether fileIdentity knows files apart.
const identities = true

// fileIdentity is a file's device and inode.
func fileIdentity(fi os.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true // Dev is not uint64 on every Unix
}
