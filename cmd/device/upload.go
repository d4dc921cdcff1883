package device

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/fileupload"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// uploadOptions are the inputs of `device upload`.
type uploadOptions struct {
	f *cmdutil.Factory

	connStr  string
	file     string
	blobName string
	conn     connectFlags

	// Filled by validation.
	up *fileupload.Options
}

// newCmdUpload returns `device upload`; runF replaces uploadRun in
// tests of flag parsing (nil: uploadRun).
func newCmdUpload(f *cmdutil.Factory, runF func(*uploadOptions) error) *cobra.Command {
	o := &uploadOptions{f: f}
	c := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a file to the hub's storage account, as a device",
		Long: `Upload FILE ('-' for stdin, with --blob-name) as IoT Hub devices upload files:
ask the hub for a SAS URI of the blob DEVICE_ID/NAME in the storage container
the hub is configured with (NAME is --blob-name, default FILE's base name),
write the blob there with the Azure Storage SDK, and tell the hub the outcome,
which it turns into a file upload notification for the service side ("iotctl
hub file-notifications"). File upload is HTTPS (port 443, or the port in
HostName) whatever transport the device otherwise uses, as in every Azure IoT
device SDK; the storage account is reached over HTTPS too, trusting the system's
CAs and --ca-file. Both requests go through the proxy in HTTPS_PROXY unless
NO_PROXY names the host (localhost and loopback addresses are never proxied);
--proxy URL tunnels them through that HTTP proxy with CONNECT
(http://[user:password@]host:port).

Prints the blob's name, URL (without its SAS token) and size; -o json prints
them as one JSON object. A hub without a storage account refuses with 400
DefaultStorageEndpointNotConfigured (exit 1); credentials the hub refuses exit 4.
If the storage account refuses the blob, the hub is told the upload failed and
the command exits 1. Modules cannot upload files (IoT Hub's file upload is for
devices).

` + identityHelp,
		Example: `  $ iotctl device upload engine.log --connection-string "$DEVICE_CS"
  $ date | iotctl device upload - --blob-name logs/today.txt -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.Usagef("give one FILE to upload ('-' for stdin, with --blob-name); got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			if err := o.validate(); err != nil {
				return exitError(err)
			}
			if runF != nil {
				return runF(o)
			}
			return o.conn.exitError(uploadRun(cmd.Context(), o))
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.connStr, cmdutil.KeyConnectionString, "", "device connection string (default $IOTCTL_DEVICE_CONNECTION_STRING)")
	fl.StringVar(&o.blobName, "blob-name", "", "name of the blob under DEVICE_ID/ (default: FILE's base name)")
	fl.String(cmdutil.KeyCAFile, "", "PEM file of a CA to trust besides the system's, e.g. the local hub's")
	o.conn.add(fl)
	// Upload is HTTPS whatever the device's transport: there is no
	// transport to choose and nothing to carry over WebSocket.
	_ = fl.MarkHidden(keyTransport)
	_ = fl.MarkHidden(keyWebSocket)
	fl.Lookup(keyProxy).Usage = "HTTP proxy URL to tunnel the hub's and the storage account's requests through with CONNECT (default: HTTPS_PROXY)"
	return c
}

func (o *uploadOptions) validate() error {
	if o.file == "-" && o.blobName == "" {
		return cmdutil.Usagef("reading stdin ('-'): name the blob with --blob-name")
	}
	if o.blobName == "" {
		o.blobName = filepath.Base(o.file)
	}
	if o.f.V.GetBool(keyWebSocket) {
		return cmdutil.Usagef("--websocket: file upload is HTTPS already, on port 443 (or the port in HostName); leave it out")
	}
	d := &device.Options{}
	if err := o.conn.options(o.f, o.connStr, d); err != nil {
		return err
	}
	tlsConf, err := service.TLSConfig(d.CAFile, nil)
	if err != nil {
		return &cmdutil.UsageError{Err: fmt.Errorf("--ca-file: %w", err)}
	}
	o.up = &fileupload.Options{Certificate: d.Certificate, HostName: d.HostName, DeviceID: d.DeviceID,
		RootCAs: tlsConf.RootCAs, TokenTTL: d.TokenTTL}
	if d.ConnectionString != "" {
		cs, err := connstr.Parse(d.ConnectionString)
		if err != nil {
			return err
		}
		if cs.ModuleID != "" {
			return cmdutil.Usagef("the connection string is a module's: IoT Hub's file upload is for devices, give a device connection string")
		}
		o.up.ConnectionString = cs
	}
	if d.Proxy != "" {
		if o.up.Proxy, err = device.ParseProxyURL(d.Proxy); err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--proxy: %w", err)}
		}
	}
	return nil
}

// uploadResult is what `device upload` prints.
type uploadResult struct {
	DeviceID string `json:"deviceId"`
	*fileupload.Result
}

// uploadRun uploads the file and prints the result.
func uploadRun(ctx context.Context, o *uploadOptions) error {
	p, err := o.f.Printer(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	log, err := o.f.Logger()
	if err != nil {
		return err
	}
	var in io.Reader = o.f.IO.In
	if o.file != "-" {
		fh, err := os.Open(o.file)
		if err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("cannot read %s: %w", o.file, errors.Unwrap(err))}
		}
		defer fh.Close()
		in = fh
	}
	o.up.Logger = log
	res, err := fileupload.Upload(ctx, o.up, o.blobName, in)
	if err != nil {
		return err
	}
	id := o.up.DeviceID
	if o.up.ConnectionString != nil {
		id = o.up.ConnectionString.DeviceID
	}
	if p.Format == output.FormatJSON {
		return p.Print(uploadResult{DeviceID: id, Result: res}, nil)
	}
	_, err = fmt.Fprintf(o.f.IO.Out, "Uploaded %s (%d bytes) to %s\n", res.BlobName, res.Size, res.BlobURL)
	return err
}
