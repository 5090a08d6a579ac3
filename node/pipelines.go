package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sluice-data/sluice/pipeline"
)

// startPipelines starts the config's pipelines; they stop after enrich
// (whose output they read) and before the archivers and the warehouse.
func (n *Node) startPipelines() error {
	ctx, cancel := context.WithCancel(context.Background())
	n.pcancel = cancel
	for _, name := range slices.Sorted(maps.Keys(n.cfg.Pipelines)) {
		p, err := pipeline.New(pipeline.Options{
			Name: name, Config: n.cfg.Pipelines[name], Bus: n.bus, Tables: n.tables(), Logger: n.log,
		})
		if err != nil {
			return err
		}
		n.pwg.Add(1)
		go func() {
			defer n.pwg.Done()
			for {
				err := p.Run(ctx)
				if err == nil || ctx.Err() != nil {
					return
				}
				// A failure (the bus away, a checkpoint race) restarts the
				// pipeline from its checkpoint.
				n.log.Error("pipeline failed; restarting from its checkpoint", "pipeline", name, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
		}()
		n.log.Info("pipeline running", "pipeline", name, "from", fmt.Sprint(n.cfg.Pipelines[name].From))
	}
	return nil
}

// tables is where pipelines write their tables: the active warehouse.
func (n *Node) tables() pipeline.TableWriter {
	if n.pgl != nil {
		return n.pgl.pg
	}
	return n.wh
}

func (n *Node) stopPipelines() {
	if n.pcancel != nil {
		n.pcancel()
		n.pwg.Wait()
	}
}
