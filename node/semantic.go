package node

import (
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/semantic"
)

// loadModels reads the semantic layer's model files (semantic.models) and,
// when every file is valid, makes them the ones the explore API answers
// from. At start a bad file stops sluice; on reload it refuses the reload
// and the running models stay.
func (n *Node) loadModels(cfg *config.Config) error {
	if cfg.Semantic.Models == "" {
		n.models.Store(nil)
		return nil
	}
	m, err := semantic.Load(cfg.Semantic.Models)
	if err != nil {
		return err
	}
	n.models.Store(m)
	n.log.Info("semantic models loaded", "dir", cfg.Semantic.Models, "explores", len(m.Explores), "views", len(m.Views))
	return nil
}

// Models is the semantic model the explore API answers from; nil: none.
func (n *Node) Models() *semantic.Model { return n.models.Load() }
