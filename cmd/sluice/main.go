// Command sluice is the whole data pipeline in one binary. This file only
// wires the packages together: each command reads the config, applies the
// flags and hands over to the stage that does the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/sluice-data/sluice/dashboard"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "The whole data pipeline in one binary: collect, bus, enrich, lake, warehouse",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCmd(), demoCmd(), sqlCmd(), badCmd(), lakeCmd(), jobsCmd(), rollupCmd(), validateCmd(), testCmd(), versionCmd(), benchCmd(), tapCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		os.Exit(1)
	}
}

// common are the flags every command that touches a data dir takes.
type common struct {
	configFile    string
	dataDir       string
	lake          string
	collectorAddr string
	apiAddr       string
	logLevel      string
}

func (c *common) register(cmd *cobra.Command, listeners bool) {
	f := cmd.Flags()
	f.StringVarP(&c.configFile, "config", "c", "", "config file (default: built-in defaults, or ./sluice.yaml if present)")
	f.StringVar(&c.dataDir, "data", "", "data directory (overrides data_dir; default ./sluice-data)")
	f.StringVar(&c.lake, "lake", "", "lake directory, or s3://bucket/prefix?endpoint=…&region=…&use_path_style=true (overrides lake.url; default <data>/lake)")
	f.StringVar(&c.apiAddr, "api-addr", "", "API address HOST:PORT (overrides http.api)")
	if listeners {
		f.StringVar(&c.collectorAddr, "collector-addr", "", "collector address HOST:PORT (overrides http.collector)")
		f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	}
}

// load reads the config and applies the flags.
func (c *common) load() (*config.Config, error) {
	path := c.configFile
	if path == "" {
		if _, err := os.Stat("sluice.yaml"); err == nil {
			path = "sluice.yaml"
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	cfg.ApplyOverrides(c.dataDir, c.collectorAddr, c.apiAddr)
	if c.lake != "" {
		cfg.Lake.URL = c.lake
	}
	if err := cfg.CheckOverrides(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// client loads the config for a command that talks to a running server and
// returns the server to ask: --api-addr (which names a server here, not a
// listener), else the one running on the data dir; "" when none runs.
func (c *common) client(ctx context.Context) (*config.Config, *server.Client, error) {
	api := c.apiAddr
	c.apiAddr = ""
	cfg, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	if api != "" && !strings.Contains(api, "://") {
		api = "http://" + api
	}
	if api == "" {
		api = server.Discover(ctx, cfg.DataDir)
	}
	if api == "" {
		return cfg, nil, nil
	}
	token := cfg.Auth.Token
	if t := os.Getenv("SLUICE_TOKEN"); t != "" {
		token = t
	}
	return cfg, &server.Client{URL: api, Token: token}, nil
}

func (c *common) logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return "dev-" + rev
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "sluice", versionString())
		},
	}
}

func validateCmd() *cobra.Command {
	var c common
	var schema bool
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a config file; every problem is reported with file:line:column and a hint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if schema {
				b, err := config.JSONSchema()
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(append(b, '\n'))
				return err
			}
			if c.configFile == "" {
				return errors.New("name the file to check: sluice validate -c sluice.yaml")
			}
			cfg, err := config.Load(c.configFile)
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return fmt.Errorf("%s: %d problem(s)", c.configFile, len(errs))
				}
				return err
			}
			var models *semantic.Model
			if cfg.Semantic.Models != "" {
				if models, err = semantic.Load(cfg.Semantic.Models); err != nil {
					var errs semantic.Errors
					if errors.As(err, &errs) {
						fmt.Fprintln(cmd.ErrOrStderr(), err)
						return fmt.Errorf("%s: %d problem(s) in the semantic models", c.configFile, len(errs))
					}
					return err
				}
			}
			if cfg.Dashboards.Dir != "" {
				if _, err := dashboard.Load(cfg.Dashboards.Dir, models); err != nil {
					var errs dashboard.Errors
					if errors.As(err, &errs) {
						fmt.Fprintln(cmd.ErrOrStderr(), err)
						return fmt.Errorf("%s: %d problem(s) in the dashboards", c.configFile, len(errs))
					}
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", c.configFile)
			return nil
		},
	}
	cmd.Flags().StringVarP(&c.configFile, "config", "c", "", "config file to check")
	cmd.Flags().BoolVar(&schema, "schema", false, "print the JSON Schema of the config file (for editor completion) instead")
	return cmd
}
