package device

import (
	"context"
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/service"
)

// serviceRegistry gives fleet devices their keys through the service
// client, creating the devices that do not exist yet.
type serviceRegistry struct {
	c *service.Client
}

func newServiceRegistry(cs *connstr.ConnectionString, opts *service.Options) (*serviceRegistry, error) {
	c, err := service.New(cs, opts)
	if err != nil {
		return nil, err
	}
	return &serviceRegistry{c: c}, nil
}

// EnsureDevice implements simulate.Registry.
func (r *serviceRegistry) EnsureDevice(ctx context.Context, id string) (string, error) {
	d, err := r.c.CreateDevice(ctx, &service.Device{DeviceID: id})
	if errors.Is(err, service.ErrConflict) {
		d, err = r.c.GetDevice(ctx, id)
	}
	if err != nil {
		return "", fmt.Errorf("device %s: %w", id, err)
	}
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("device %s has no shared access key (it uses X.509?); simulate needs SAS devices", id)
	}
	return d.Authentication.SymmetricKey.PrimaryKey, nil
}

// EnsureCADevice implements simulate.CARegistry.
func (r *serviceRegistry) EnsureCADevice(ctx context.Context, id string) error {
	d, err := r.c.CreateDevice(ctx, &service.Device{DeviceID: id,
		Authentication: &service.Authentication{Type: iothub.AuthCertificateAuthority}})
	if errors.Is(err, service.ErrConflict) {
		d, err = r.c.GetDevice(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	if d.Authentication == nil || d.Authentication.Type != iothub.AuthCertificateAuthority {
		typ := "none"
		if d.Authentication != nil {
			typ = d.Authentication.Type
		}
		return fmt.Errorf("device %s exists with %s authentication; a --device-ca fleet needs certificateAuthority devices", id, typ)
	}
	return nil
}
