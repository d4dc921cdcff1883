package hub_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/iothub"
)

type twinJSON struct {
	DeviceID   string         `json:"deviceId"`
	ModuleID   string         `json:"moduleId"`
	Etag       string         `json:"etag"`
	Version    int64          `json:"version"`
	Tags       map[string]any `json:"tags"`
	Properties struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	} `json:"properties"`
}

func TestTwinShowAndUpdate(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	if err := e.hub.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.hub.Registry().CreateModule(&iothub.Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	// A connected device sees the desired properties the command sets.
	d, err := device.New(&device.Options{ConnectionString: mustCS(t, e, "dev1", ""), CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	desired := make(chan json.RawMessage, 10)
	d.SetDesiredHandler(func(patch json.RawMessage, _ int64) { desired <- patch })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())

	t.Run("show prints the twin as JSON on a terminal too", func(t *testing.T) {
		tw := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "show", "dev1"))
		if tw.DeviceID != "dev1" || tw.Etag == "" || tw.Properties.Desired["$version"] == nil {
			t.Errorf("twin %+v", tw)
		}
		if y := e.ok(t, "hub", "twin", "show", "dev1", "-o", "yaml"); !strings.Contains(y, "deviceId: dev1") {
			t.Errorf("yaml:\n%s", y)
		}
	})

	t.Run("update desired and tags", func(t *testing.T) {
		tw := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "update", "dev1", "--desired", `{"telemetryInterval":5}`, "--tags", `{"site":"lab","floor":2}`, "-o", "json"))
		if tw.Properties.Desired["telemetryInterval"] != float64(5) || tw.Tags["site"] != "lab" || tw.Tags["floor"] != float64(2) {
			t.Errorf("updated twin %+v", tw)
		}
		select {
		case p := <-desired:
			var m map[string]any
			if json.Unmarshal(p, &m); m["telemetryInterval"] != float64(5) {
				t.Errorf("the device got desired %s", p)
			}
		case <-time.After(10 * time.Second):
			t.Error("the device got no desired patch")
		}
		tw = decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "update", "--device-id", "dev1", "--tags", `{"floor":null}`, "-o", "json"))
		if _, ok := tw.Tags["floor"]; ok || tw.Tags["site"] != "lab" {
			t.Errorf("tags after deleting floor: %v", tw.Tags)
		}
	})

	t.Run("conditional update", func(t *testing.T) {
		etag := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "show", "dev1", "-o", "json")).Etag
		tw := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "update", "dev1", "--desired", `{"x":1}`, "--etag", etag, "-o", "json"))
		if tw.Etag == etag || tw.Properties.Desired["x"] != float64(1) {
			t.Errorf("twin %+v after a conditional update from etag %s", tw, etag)
		}
		e.fails(t, cmdutil.ExitFailure, "412", "hub", "twin", "update", "dev1", "--desired", `{"x":2}`, "--etag", etag)
		if now := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "show", "dev1", "-o", "json")); now.Properties.Desired["x"] != float64(1) {
			t.Errorf("a refused update changed x to %v", now.Properties.Desired["x"])
		}
	})

	t.Run("module twin", func(t *testing.T) {
		tw := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "update", "dev1", "-m", "mod1", "--desired", `{"m":true}`, "-o", "json"))
		if tw.ModuleID != "mod1" || tw.Properties.Desired["m"] != true {
			t.Errorf("module twin %+v", tw)
		}
		if dev := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "show", "dev1", "-o", "json")); dev.Properties.Desired["m"] != nil {
			t.Error("the module's update landed on the device twin")
		}
		if mod := decodeJSON[twinJSON](t, e.ok(t, "hub", "twin", "show", "dev1", "--module-id", "mod1", "-o", "json")); mod.Properties.Desired["m"] != true {
			t.Errorf("module twin %+v", mod)
		}
	})

	t.Run("errors", func(t *testing.T) {
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "twin", "show", "ghost")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "twin", "show", "dev1", "-m", "ghost")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "twin", "update", "ghost", "--tags", `{"a":1}`)
		e.fails(t, cmdutil.ExitUsage, "xml", "hub", "twin", "show", "dev1", "-o", "xml")
	})
}
