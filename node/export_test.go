package node

import "github.com/sluice-data/sluice/bus"

// Bus is the node's bus, for tests that play a part of sluice on it.
func (n *Node) Bus() *bus.Bus { return n.bus }
