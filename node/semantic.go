package node

import (
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/dashboard"
	"github.com/sluice-data/sluice/semantic"
)

// loadModels reads the semantic layer's model files (semantic.models) and
// the dashboards (dashboards.dir), whose tiles are checked against those
// models, and, when every file is valid, makes them the ones the explore
// and dashboard APIs answer from. At start a bad file stops sluice; on
// reload it refuses the reload and the running models and dashboards stay.
func (n *Node) loadModels(cfg *config.Config) error {
	var m *semantic.Model
	if cfg.Semantic.Models != "" {
		var err error
		if m, err = semantic.Load(cfg.Semantic.Models); err != nil {
			return err
		}
	}
	var ds []*dashboard.Dashboard
	if cfg.Dashboards.Dir != "" {
		var err error
		if ds, err = dashboard.Load(cfg.Dashboards.Dir, m); err != nil {
			return err
		}
	}
	n.models.Store(m)
	n.dashboards.Store(&ds)
	if m != nil {
		n.log.Info("semantic models loaded", "dir", cfg.Semantic.Models, "explores", len(m.Explores), "views", len(m.Views))
	}
	if cfg.Dashboards.Dir != "" {
		n.log.Info("dashboards loaded", "dir", cfg.Dashboards.Dir, "dashboards", len(ds))
	}
	return nil
}

// Models is the semantic model the explore API answers from; nil: none.
func (n *Node) Models() *semantic.Model { return n.models.Load() }

// Dashboards are the dashboards the UI shows, in file name order.
func (n *Node) Dashboards() []*dashboard.Dashboard {
	if p := n.dashboards.Load(); p != nil {
		return *p
	}
	return nil
}
