package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// The wire types of the service API (pkg/iothub, shared with the local
// hub), under the names this package's callers use.
type (
	Device         = iothub.Device
	Module         = iothub.Module
	Twin           = iothub.Twin
	Authentication = iothub.Authentication
	SymmetricKey   = iothub.SymmetricKey
	X509Thumbprint = iothub.X509Thumbprint
	Capabilities   = iothub.Capabilities
)

// CreateDevice creates a device. Empty keys of a sas device are made by
// the hub. An existing id gives a *StatusError matching ErrConflict.
func (c *Client) CreateDevice(ctx context.Context, d *Device) (*Device, error) {
	if d.DeviceID == "" {
		return nil, errNoTarget
	}
	var out Device
	_, err := c.do(ctx, request{method: "PUT", path: pathOf("devices", d.DeviceID), body: d}, &out)
	return &out, err
}

// UpdateDevice replaces a device; etag "" means "*" (unconditional).
func (c *Client) UpdateDevice(ctx context.Context, d *Device, etag string) (*Device, error) {
	if etag == "" {
		etag = "*"
	}
	var out Device
	_, err := c.do(ctx, request{method: "PUT", path: pathOf("devices", d.DeviceID), body: d, ifMatch: etag, idempotent: true}, &out)
	return &out, err
}

// GetDevice returns a device.
func (c *Client) GetDevice(ctx context.Context, id string) (*Device, error) {
	var out Device
	_, err := c.do(ctx, request{method: "GET", path: pathOf("devices", id), idempotent: true}, &out)
	return &out, err
}

// ListDevices returns up to top devices (0: the hub's default).
func (c *Client) ListDevices(ctx context.Context, top int) ([]Device, error) {
	q := url.Values{}
	if top > 0 {
		q.Set("top", strconv.Itoa(top))
	}
	var out []Device
	_, err := c.do(ctx, request{method: "GET", path: "/devices", query: q, idempotent: true}, &out)
	return out, err
}

// DeleteDevice deletes a device; etag "" means "*".
func (c *Client) DeleteDevice(ctx context.Context, id, etag string) error {
	if etag == "" {
		etag = "*"
	}
	_, err := c.do(ctx, request{method: "DELETE", path: pathOf("devices", id), ifMatch: etag, idempotent: true}, nil)
	return err
}

// CreateModule creates a module of a device.
func (c *Client) CreateModule(ctx context.Context, m *Module) (*Module, error) {
	var out Module
	_, err := c.do(ctx, request{method: "PUT", path: pathOf("devices", m.DeviceID, "modules", m.ModuleID), body: m}, &out)
	return &out, err
}

// GetModule returns a module.
func (c *Client) GetModule(ctx context.Context, deviceID, moduleID string) (*Module, error) {
	var out Module
	_, err := c.do(ctx, request{method: "GET", path: pathOf("devices", deviceID, "modules", moduleID), idempotent: true}, &out)
	return &out, err
}

// ListModules returns a device's modules.
func (c *Client) ListModules(ctx context.Context, deviceID string) ([]Module, error) {
	var out []Module
	_, err := c.do(ctx, request{method: "GET", path: pathOf("devices", deviceID, "modules"), idempotent: true}, &out)
	return out, err
}

// DeleteModule deletes a module; etag "" means "*".
func (c *Client) DeleteModule(ctx context.Context, deviceID, moduleID, etag string) error {
	if etag == "" {
		etag = "*"
	}
	_, err := c.do(ctx, request{method: "DELETE", path: pathOf("devices", deviceID, "modules", moduleID), ifMatch: etag, idempotent: true}, nil)
	return err
}

func twinPath(t Target) string {
	if t.ModuleID != "" {
		return pathOf("twins", t.DeviceID, "modules", t.ModuleID)
	}
	return pathOf("twins", t.DeviceID)
}

// GetTwin returns a device's or module's twin.
func (c *Client) GetTwin(ctx context.Context, t Target) (*Twin, error) {
	var out Twin
	_, err := c.do(ctx, request{method: "GET", path: twinPath(t), idempotent: true}, &out)
	return &out, err
}

// TwinPatch is an update of tags and desired properties; a null value
// deletes a member.
type TwinPatch = iothub.TwinUpdate

// NewTwinPatch builds a patch from tags and desired JSON objects (each
// may be nil).
func NewTwinPatch(tags, desired json.RawMessage) *TwinPatch {
	p := &TwinPatch{Tags: tags}
	if desired != nil {
		p.Properties = &iothub.TwinUpdateProperties{Desired: desired}
	}
	return p
}

// UpdateTwin patches a twin; etag "" means unconditional.
func (c *Client) UpdateTwin(ctx context.Context, t Target, patch *TwinPatch, etag string) (*Twin, error) {
	var out Twin
	_, err := c.do(ctx, request{method: "PATCH", path: twinPath(t), body: patch, ifMatch: etag}, &out)
	return &out, err
}

// DeviceStats are the registry's device counts.
type DeviceStats struct {
	Total    int `json:"totalDeviceCount"`
	Enabled  int `json:"enabledDeviceCount"`
	Disabled int `json:"disabledDeviceCount"`
}

// DeviceStatistics returns the registry's device counts.
func (c *Client) DeviceStatistics(ctx context.Context) (*DeviceStats, error) {
	var out DeviceStats
	_, err := c.do(ctx, request{method: "GET", path: "/statistics/devices", idempotent: true}, &out)
	return &out, err
}

// ServiceStats are the hub's service counts.
type ServiceStats struct {
	Connected int `json:"connectedDeviceCount"`
}

// ServiceStatistics returns the number of connected devices.
func (c *Client) ServiceStatistics(ctx context.Context) (*ServiceStats, error) {
	var out ServiceStats
	_, err := c.do(ctx, request{method: "GET", path: "/statistics/service", idempotent: true}, &out)
	return &out, err
}

// Query runs an IoT Hub query such as "SELECT * FROM devices" and
// returns every result item, following the query API's continuation
// from page to page (1,000 items a page). With top > 0 it stops after
// top items.
func (c *Client) Query(ctx context.Context, query string, top int) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	err := c.QueryPages(ctx, query, top, func(page []json.RawMessage) error {
		out = append(out, page...)
		return nil
	})
	return out, err
}

// QueryPages runs query and calls fn with each page of results as it
// arrives, following the continuation until the last page, top items
// (when top > 0), or fn's first error, which it returns.
func (c *Client) QueryPages(ctx context.Context, query string, top int, fn func([]json.RawMessage) error) error {
	cont, n := "", 0
	for {
		size := maxQueryPage
		if top > 0 {
			size = min(size, top-n)
		}
		h := http.Header{"X-Ms-Max-Item-Count": {strconv.Itoa(size)}}
		if cont != "" {
			h.Set("X-Ms-Continuation", cont)
		}
		var page []json.RawMessage
		hdr, err := c.do(ctx, request{method: "POST", path: "/devices/query", body: map[string]string{"query": query},
			header: h, idempotent: true}, &page)
		if err != nil {
			return err
		}
		if len(page) > size {
			page = page[:size]
		}
		n += len(page)
		if err := fn(page); err != nil {
			return err
		}
		cont = hdr.Get("X-Ms-Continuation")
		if cont == "" || (top > 0 && n >= top) {
			return nil
		}
		if len(page) == 0 {
			return fmt.Errorf("service: query: the hub returned an empty page with a continuation")
		}
	}
}

// PurgeResult is IoT Hub's answer to a cloud-to-device queue purge.
type PurgeResult struct {
	DeviceID            string `json:"deviceId"`
	ModuleID            string `json:"moduleId,omitempty"`
	TotalMessagesPurged int    `json:"totalMessagesPurged"`
}

// PurgeC2D deletes every cloud-to-device message queued for a device
// (DELETE /devices/{id}/commands). A missing device gives a
// *StatusError matching ErrNotFound.
func (c *Client) PurgeC2D(ctx context.Context, deviceID string) (*PurgeResult, error) {
	if deviceID == "" {
		return nil, errNoTarget
	}
	var out PurgeResult
	_, err := c.do(ctx, request{method: "DELETE", path: pathOf("devices", deviceID) + "/commands", idempotent: true}, &out)
	return &out, err
}

// UpdateModule replaces a module; etag "" means "*" (unconditional).
func (c *Client) UpdateModule(ctx context.Context, m *Module, etag string) (*Module, error) {
	if etag == "" {
		etag = "*"
	}
	var out Module
	_, err := c.do(ctx, request{method: "PUT", path: pathOf("devices", m.DeviceID, "modules", m.ModuleID), body: m, ifMatch: etag, idempotent: true}, &out)
	return &out, err
}

// maxQueryPage is the largest page IoT Hub's query API returns.
const maxQueryPage = 1000
