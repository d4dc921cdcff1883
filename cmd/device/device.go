// Package device holds the `iotctl device` commands: act as a device
// (or a fleet of simulated devices) against an IoT hub over MQTT.
package device

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// NewCmdDevice returns the `device` command and its subcommands.
func NewCmdDevice(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "device",
		Short: "Act as a device: simulate one or many, send messages once, upload a file",
		Long: `Commands that act as an IoT Hub device over MQTT (TLS, port 8883 or the port in
HostName; or over WebSocket on 443 with --websocket): simulate one device or a
fleet, send device-to-cloud messages once, or upload a file (over HTTPS).

The device connection string comes from --connection-string,
IOTCTL_DEVICE_CONNECTION_STRING or device-connection-string in the config file.
For the local hub, trust its CA with --ca-file (or IOTCTL_CA_FILE / ca-file).

` + connectHelp,
		Example: `  $ iotctl device simulate --connection-string "$DEVICE_CS"
  $ iotctl device send --connection-string "$DEVICE_CS" --data '{"hello":"world"}'
  $ HTTPS_PROXY=http://proxy.corp:3128 iotctl device simulate --websocket
  $ iotctl device send --host myhub.azure-devices.net --device-id cam1 --cert cam1.pem --key cam1-key.pem --data hi`,
	}
	c.AddCommand(newCmdSimulate(f, nil), newCmdSend(f, nil), newCmdUpload(f, nil))
	// A device command's --connection-string is a device's: its key is
	// device-connection-string (IOTCTL_DEVICE_CONNECTION_STRING), not
	// the service string of connection-string.
	for _, sub := range c.Commands() {
		if sub.Flags().Lookup(cmdutil.KeyConnectionString) != nil {
			cmdutil.SetConfigKey(sub.Flags(), cmdutil.KeyConnectionString, cmdutil.KeyDeviceConnectionString)
		}
	}
	return c
}

// exitError maps the errors of pkg/device and pkg/simulate to exit codes.
func exitError(err error) error {
	if err == nil {
		return nil
	}
	var te *simulate.TemplateError
	var se *simulate.SpecError
	var fe *device.FileError
	switch {
	case errors.As(err, &te), errors.As(err, &se), errors.Is(err, simulate.ErrNoKey),
		errors.As(err, &fe), errors.Is(err, device.ErrNoCertificate):
		return &cmdutil.UsageError{Err: err}
	case errors.Is(err, device.ErrUnauthorized):
		return &cmdutil.ExitError{Code: cmdutil.ExitAuth, Err: fmt.Errorf("%w (%s)", err, authHint(false))}
	}
	return err
}

// parseProperties reads repeated --property k=v flags.
func parseProperties(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	p := make(map[string]string, len(specs))
	for _, s := range specs {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, cmdutil.Usagef("--property %q: want NAME=VALUE", s)
		}
		p[k] = v
	}
	return p, nil
}

// readData returns --data, or the contents of --data-file ("-" is stdin).
func readData(in io.Reader, data, file string, dataSet bool) (string, bool, error) {
	switch {
	case dataSet && file != "":
		return "", false, cmdutil.Usagef("give --data or --data-file, not both")
	case file == "-":
		b, err := io.ReadAll(in)
		if err != nil {
			return "", false, err
		}
		return string(b), true, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", false, cmdutil.Usagef("--data-file: %v", err)
		}
		return string(b), true, nil
	}
	return data, dataSet, nil
}
