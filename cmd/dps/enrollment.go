package dps

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// EnrollmentOptions are the inputs of `dps enrollment` and
// `dps enrollment-group` create, show, list and delete. Flag names are
// those of `az iot dps enrollment create`.
type EnrollmentOptions struct {
	F *cmdutil.Factory
	// Group is set for enrollment groups.
	Group bool
	// ID is the enrollment's registration id, or the group's id.
	ID              string
	DeviceID        string
	AttestationType string
	PrimaryKey      string
	SecondaryKey    string
	// CertFile and SecondaryCertFile are PEM certificates: the device's
	// for an enrollment, signing (CA) certificates for a group.
	CertFile           string
	SecondaryCertFile  string
	Tags               string
	Desired            string
	Edge               bool
	ProvisioningStatus string
	ReprovisionPolicy  string
	AllocationPolicy   string
	ShowSecrets        bool
}

// Reprovision policies, as `az iot dps enrollment create
// --reprovision-policy` names them.
var reprovisionPolicies = map[string]hubdps.ReprovisionPolicy{
	"reprovisionandmigratedata": {UpdateHubAssignment: true, MigrateDeviceData: true},
	"reprovisionandresetdata":   {UpdateHubAssignment: true, MigrateDeviceData: false},
	"never":                     {UpdateHubAssignment: false, MigrateDeviceData: true},
}

func (o *EnrollmentOptions) what() string {
	if o.Group {
		return "enrollment group"
	}
	return "enrollment"
}

// NewCmdEnrollment returns `dps enrollment` (group false) or
// `dps enrollment-group` (group true) with create, show, list and
// delete.
func NewCmdEnrollment(f *cmdutil.Factory, group bool) *cobra.Command {
	use, id := enrollmentNames(group)
	short, newID := "Manage individual enrollments of a DPS", "dev-2"
	if group {
		short, newID = "Manage enrollment groups of a DPS", "fleet"
	}
	parent := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + ` through its service API, with its service connection string
(--dps-connection-string or IOTCTL_DPS_CONNECTION_STRING, which 'iotctl hub serve'
prints and exports) and, for the local hub, its CA (--ca-file or IOTCTL_CA_FILE).
Keys are redacted unless --show-secrets is given.

Exit codes: 5 when the ` + use + ` does not exist, 4 when DPS refuses the
connection string, 3 for input DPS refuses (an unknown allocation policy, a
certificate that is not one).`,
		Example: "  $ iotctl dps " + use + " create --enrollment-id " + newID + " --initial-twin-tags '{\"site\":\"lab\"}'\n" +
			"  $ iotctl dps " + use + " show " + id + " --show-secrets -o json\n" +
			"  $ iotctl dps " + use + " list\n" +
			"  $ iotctl dps " + use + " delete " + id,
	}

	parent.AddCommand(NewCmdEnrollmentCreate(f, group, nil), NewCmdEnrollmentShow(f, group, nil),
		NewCmdEnrollmentList(f, group, nil), NewCmdEnrollmentDelete(f, group, nil))
	return parent
}

// NewCmdEnrollmentCreate returns `dps enrollment create` (or
// `dps enrollment-group create`); runF replaces EnrollmentCreateRun in
// tests.
func NewCmdEnrollmentCreate(f *cmdutil.Factory, group bool, runF func(*EnrollmentOptions) error) *cobra.Command {
	use, idHelp, certHelp := "enrollment", "the enrollment's registration id", "the device's certificate (PEM)"
	newID, x509ID, certFile := "dev-2", "cam-1", "cam-1.pem"
	if group {
		use, idHelp, certHelp = "enrollment-group", "the enrollment group's id", "the group's signing (CA) certificate (PEM)"
		newID, x509ID, certFile = "fleet", "cameras", "fleet-ca.pem"
	}
	o := &EnrollmentOptions{F: f, Group: group}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create or replace an " + strings.TrimPrefix(use, "enrollment-") + " (symmetric key or X.509)",
		Long: `Create or replace an ` + o.what() + `. With --attestation-type symmetrickey (the
default) DPS generates the keys unless --primary-key/--secondary-key give them;
with x509, --certificate-path names ` + certHelp + `.
The initial twin (--initial-twin-tags, --initial-twin-properties: desired
properties, as JSON objects), Edge (--edge-enabled), --provisioning-status
(enabled or disabled), --reprovision-policy (reprovisionandmigratedata, the
default; reprovisionandresetdata; never) and --allocation-policy (hashed,
geoLatency, static, custom) are those of 'az iot dps enrollment create'.`,
		Example: "  $ iotctl dps " + use + " create --enrollment-id " + newID + " --initial-twin-tags '{\"site\":\"lab\"}' --edge-enabled\n" +
			"  $ iotctl dps " + use + " create --enrollment-id " + x509ID + " --attestation-type x509 --certificate-path " + certFile,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return EnrollmentCreateRun(cmd.Context(), o)
		},
	}
	fl := create.Flags()
	fl.StringVar(&o.ID, "enrollment-id", "", idHelp)
	if !group {
		fl.StringVar(&o.DeviceID, "device-id", "", "the device id in the hub (default: the registration id)")
	}
	fl.StringVar(&o.AttestationType, "attestation-type", "symmetrickey", "symmetrickey or x509 (tpm is not supported by the local DPS)")
	fl.StringVar(&o.PrimaryKey, "primary-key", "", "the primary key (base64; default: generated by DPS)")
	fl.StringVar(&o.SecondaryKey, "secondary-key", "", "the secondary key (base64; default: generated by DPS)")
	fl.StringVar(&o.CertFile, "certificate-path", "", certHelp+", for x509")
	fl.StringVar(&o.SecondaryCertFile, "secondary-certificate-path", "", "a secondary certificate (PEM), for x509")
	fl.StringVar(&o.Tags, "initial-twin-tags", "", "the initial twin's tags (a JSON object)")
	fl.StringVar(&o.Desired, "initial-twin-properties", "", "the initial twin's desired properties (a JSON object)")
	fl.BoolVar(&o.Edge, "edge-enabled", false, "make the devices IoT Edge devices")
	fl.StringVar(&o.ProvisioningStatus, "provisioning-status", "enabled", "enabled or disabled")
	fl.StringVar(&o.ReprovisionPolicy, "reprovision-policy", "reprovisionandmigratedata", "reprovisionandmigratedata, reprovisionandresetdata or never")
	fl.StringVar(&o.AllocationPolicy, "allocation-policy", "", "hashed, geoLatency, static or custom (default: DPS's)")
	fl.BoolVar(&o.ShowSecrets, "show-secrets", false, "print the keys")

	addServiceFlags(create.Flags())
	return create
}

// enrollmentNames are the words and example ids of `dps enrollment`
// (group false) or `dps enrollment-group` (group true).
func enrollmentNames(group bool) (use, id string) {
	if group {
		return "enrollment-group", "examples"
	}
	return "enrollment", "cam-1"
}

// NewCmdEnrollmentShow returns `dps enrollment show` (or
// `dps enrollment-group show`); runF replaces EnrollmentShowRun in
// tests.
func NewCmdEnrollmentShow(f *cmdutil.Factory, group bool, runF func(*EnrollmentOptions) error) *cobra.Command {
	use, id := enrollmentNames(group)
	o := &EnrollmentOptions{F: f, Group: group}
	cmd := &cobra.Command{
		Use:     "show [ID]",
		Short:   "Show an " + o.what(),
		Long:    "Show an " + o.what() + ".\n\nName it by its argument or by --enrollment-id, as 'az iot dps' does. Keys\nare redacted unless --show-secrets is given. Exits 5 when it does not exist.",
		Example: "  $ iotctl dps " + use + " show " + id + " --show-secrets -o json\n  $ iotctl dps " + use + " show --enrollment-id " + id,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.ID, err = cmdutil.IDArg(args, o.what()+" id", "enrollment-id", o.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return EnrollmentShowRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.ID, "enrollment-id", "", "the "+o.what()+"'s id (or give it as the argument)")
	cmd.Flags().BoolVar(&o.ShowSecrets, "show-secrets", false, "print the keys")
	addServiceFlags(cmd.Flags())
	return cmd
}

// NewCmdEnrollmentList returns `dps enrollment list` (or
// `dps enrollment-group list`); runF replaces EnrollmentListRun in
// tests.
func NewCmdEnrollmentList(f *cmdutil.Factory, group bool, runF func(*EnrollmentOptions) error) *cobra.Command {
	use, _ := enrollmentNames(group)
	o := &EnrollmentOptions{F: f, Group: group}
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the " + o.what() + "s",
		Example: "  $ iotctl dps " + use + " list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return EnrollmentListRun(cmd.Context(), o)
		},
	}
	addServiceFlags(cmd.Flags())
	return cmd
}

// NewCmdEnrollmentDelete returns `dps enrollment delete` (or
// `dps enrollment-group delete`); runF replaces EnrollmentDeleteRun in
// tests.
func NewCmdEnrollmentDelete(f *cmdutil.Factory, group bool, runF func(*EnrollmentOptions) error) *cobra.Command {
	use, id := enrollmentNames(group)
	o := &EnrollmentOptions{F: f, Group: group}
	cmd := &cobra.Command{
		Use:     "delete [ID]",
		Short:   "Delete an " + o.what() + " (the devices it provisioned stay in the hub)",
		Long:    "Delete an " + o.what() + ". The devices it provisioned stay in the hub.\n\nName it by its argument or by --enrollment-id, as 'az iot dps' does. Exits 5\nwhen it does not exist.",
		Example: "  $ iotctl dps " + use + " delete " + id,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.ID, err = cmdutil.IDArg(args, o.what()+" id", "enrollment-id", o.ID); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return EnrollmentDeleteRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.ID, "enrollment-id", "", "the "+o.what()+"'s id (or give it as the argument)")
	addServiceFlags(cmd.Flags())
	return cmd
}

func (o *EnrollmentOptions) check() error {
	if o.ID == "" {
		return cmdutil.Usagef("give --enrollment-id")
	}
	if err := hubdps.ValidateID(o.what()+" id", o.ID); err != nil {
		return usage(err)
	}
	switch strings.ToLower(o.AttestationType) {
	case "symmetrickey":
		if o.CertFile != "" || o.SecondaryCertFile != "" {
			return cmdutil.Usagef("--certificate-path is for --attestation-type x509")
		}
	case "x509":
		if o.CertFile == "" {
			return cmdutil.Usagef("--attestation-type x509 needs --certificate-path")
		}
		if o.PrimaryKey != "" || o.SecondaryKey != "" {
			return cmdutil.Usagef("--primary-key/--secondary-key are for --attestation-type symmetrickey")
		}
	case "tpm":
		return cmdutil.Usagef("--attestation-type tpm is not supported: use symmetrickey or x509")
	default:
		return cmdutil.Usagef("--attestation-type %q: use symmetrickey or x509", o.AttestationType)
	}
	for flag, v := range map[string]string{"--initial-twin-tags": o.Tags, "--initial-twin-properties": o.Desired} {
		var m map[string]any
		if v != "" && json.Unmarshal([]byte(v), &m) != nil {
			return cmdutil.Usagef("%s is not a JSON object: give e.g. '{\"site\":\"lab\"}'", flag)
		}
	}
	if s := o.ProvisioningStatus; s != hubdps.StatusEnabled && s != hubdps.StatusDisabled {
		return cmdutil.Usagef("--provisioning-status %q: use enabled or disabled", s)
	}
	if _, ok := reprovisionPolicies[strings.ToLower(o.ReprovisionPolicy)]; !ok {
		return cmdutil.Usagef("--reprovision-policy %q: use reprovisionandmigratedata, reprovisionandresetdata or never", o.ReprovisionPolicy)
	}
	return nil
}

// attestation builds the enrollment's attestation from the flags.
func (o *EnrollmentOptions) attestation() (*hubdps.Attestation, error) {
	if strings.EqualFold(o.AttestationType, "symmetrickey") {
		return &hubdps.Attestation{Type: hubdps.AttestationSymmetricKey,
			SymmetricKey: &hubdps.SymmetricKeyAttestation{PrimaryKey: o.PrimaryKey, SecondaryKey: o.SecondaryKey}}, nil
	}
	certs := &hubdps.X509Certificates{}
	for _, c := range []struct {
		file string
		dst  **hubdps.X509CertificateWithInfo
	}{{o.CertFile, &certs.Primary}, {o.SecondaryCertFile, &certs.Secondary}} {
		if c.file == "" {
			continue
		}
		b, err := os.ReadFile(c.file)
		if err != nil {
			return nil, cmdutil.Usagef("%v", err)
		}
		if _, err := hubdps.ParseCertificate(string(b)); err != nil {
			return nil, cmdutil.Usagef("%s: %v", c.file, err)
		}
		*c.dst = &hubdps.X509CertificateWithInfo{Certificate: string(b)}
	}
	x := &hubdps.X509Attestation{ClientCertificates: certs}
	if o.Group {
		x = &hubdps.X509Attestation{SigningCertificates: certs}
	}
	return &hubdps.Attestation{Type: hubdps.AttestationX509, X509: x}, nil
}

func (o *EnrollmentOptions) initialTwin() *hubdps.InitialTwin {
	if o.Tags == "" && o.Desired == "" {
		return nil
	}
	t := &hubdps.InitialTwin{}
	if o.Tags != "" {
		t.Tags = json.RawMessage(o.Tags)
	}
	if o.Desired != "" {
		t.Properties = &hubdps.InitialTwinProperties{Desired: json.RawMessage(o.Desired)}
	}
	return t
}

// EnrollmentCreateRun creates or replaces the enrollment or group and
// prints it.
func EnrollmentCreateRun(ctx context.Context, o *EnrollmentOptions) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	att, err := o.attestation()
	if err != nil {
		return err
	}
	rp := reprovisionPolicies[strings.ToLower(o.ReprovisionPolicy)]
	var caps *iothub.Capabilities
	if o.Edge {
		caps = &iothub.Capabilities{IotEdge: true}
	}
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		if o.Group {
			g, err := s.PutGroup(ctx, &hubdps.EnrollmentGroup{EnrollmentGroupID: o.ID, Attestation: att, InitialTwin: o.initialTwin(),
				ProvisioningStatus: o.ProvisioningStatus, ReprovisionPolicy: &rp, AllocationPolicy: o.AllocationPolicy, Capabilities: caps})
			if err != nil {
				return err
			}
			return printEnrollment(p, groupView(g, o.ShowSecrets))
		}
		e, err := s.PutEnrollment(ctx, &hubdps.IndividualEnrollment{RegistrationID: o.ID, DeviceID: o.DeviceID, Attestation: att, InitialTwin: o.initialTwin(),
			ProvisioningStatus: o.ProvisioningStatus, ReprovisionPolicy: &rp, AllocationPolicy: o.AllocationPolicy, Capabilities: caps})
		if err != nil {
			return err
		}
		return printEnrollment(p, individualView(e, o.ShowSecrets))
	})
}

// EnrollmentShowRun prints one enrollment or group.
func EnrollmentShowRun(ctx context.Context, o *EnrollmentOptions) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		if o.Group {
			g, err := s.Group(ctx, o.ID)
			if err != nil {
				return err
			}
			return printEnrollment(p, groupView(g, o.ShowSecrets))
		}
		e, err := s.Enrollment(ctx, o.ID)
		if err != nil {
			return err
		}
		return printEnrollment(p, individualView(e, o.ShowSecrets))
	})
}

// EnrollmentListRun prints every enrollment or group, keys redacted.
func EnrollmentListRun(ctx context.Context, o *EnrollmentOptions) error {
	p, err := o.F.Printer()
	if err != nil {
		return err
	}
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		views := []enrollmentView{}
		if o.Group {
			gs, err := s.Groups(ctx)
			if err != nil {
				return err
			}
			for i := range gs {
				views = append(views, groupView(&gs[i], false))
			}
		} else {
			es, err := s.Enrollments(ctx)
			if err != nil {
				return err
			}
			for i := range es {
				views = append(views, individualView(&es[i], false))
			}
		}
		return p.Print(views, func(t *output.Table) {
			t.Header("ID", "ATTESTATION", "STATUS", "DEVICE ID", "EDGE")
			for _, v := range views {
				t.Row(v.ID, v.Attestation, v.ProvisioningStatus, v.DeviceID, v.IotEdge)
			}
		})
	})
}

// EnrollmentDeleteRun deletes an enrollment or group.
func EnrollmentDeleteRun(ctx context.Context, o *EnrollmentOptions) error {
	return withService(ctx, o.F, func(ctx context.Context, s *provisioning.Service) error {
		del := s.DeleteEnrollment
		if o.Group {
			del = s.DeleteGroup
		}
		if err := del(ctx, o.ID); err != nil {
			return err
		}
		fmt.Fprintf(o.F.IO.Diag(), "deleted %s %s\n", o.what(), o.ID)
		return nil
	})
}

// enrollmentView is what the enrollment commands print: the service
// API's fields, flattened, keys redacted unless asked for.
type enrollmentView struct {
	ID                 string                      `json:"id"`
	DeviceID           string                      `json:"deviceId,omitempty"`
	Attestation        string                      `json:"attestation"`
	PrimaryKey         string                      `json:"primaryKey,omitempty"`
	SecondaryKey       string                      `json:"secondaryKey,omitempty"`
	Certificate        *hubdps.X509CertificateInfo `json:"certificate,omitempty"`
	ProvisioningStatus string                      `json:"provisioningStatus"`
	ReprovisionPolicy  string                      `json:"reprovisionPolicy,omitempty"`
	AllocationPolicy   string                      `json:"allocationPolicy,omitempty"`
	IotEdge            bool                        `json:"iotEdge"`
	InitialTwin        *hubdps.InitialTwin         `json:"initialTwin,omitempty"`
	Etag               string                      `json:"etag"`
	Created            string                      `json:"createdDateTimeUtc,omitempty"`
	Updated            string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	RegistrationStatus string                      `json:"registrationStatus,omitempty"`
}

func viewOf(a *hubdps.Attestation, rp *hubdps.ReprovisionPolicy, caps *iothub.Capabilities, show bool, v *enrollmentView) {
	if a != nil {
		v.Attestation = a.Type
		if k := a.SymmetricKey; k != nil {
			v.PrimaryKey, v.SecondaryKey = connstr.Redacted, connstr.Redacted
			if show {
				v.PrimaryKey, v.SecondaryKey = k.PrimaryKey, k.SecondaryKey
			}
		}
		if x := a.X509; x != nil {
			for _, cs := range []*hubdps.X509Certificates{x.ClientCertificates, x.SigningCertificates} {
				if cs != nil && cs.Primary != nil {
					v.Certificate = cs.Primary.Info
				}
			}
		}
	}
	if rp != nil {
		for name, p := range reprovisionPolicies {
			if p == *rp {
				v.ReprovisionPolicy = name
			}
		}
	}
	v.IotEdge = caps != nil && caps.IotEdge
}

func individualView(e *hubdps.IndividualEnrollment, show bool) enrollmentView {
	v := enrollmentView{ID: e.RegistrationID, DeviceID: e.DeviceID, ProvisioningStatus: e.ProvisioningStatus, AllocationPolicy: e.AllocationPolicy,
		InitialTwin: e.InitialTwin, Etag: e.Etag, Created: e.CreatedDateTimeUTC, Updated: e.LastUpdatedDateTimeUTC}
	if e.RegistrationState != nil {
		v.RegistrationStatus = e.RegistrationState.Status
	}
	viewOf(e.Attestation, e.ReprovisionPolicy, e.Capabilities, show, &v)
	return v
}

func groupView(g *hubdps.EnrollmentGroup, show bool) enrollmentView {
	v := enrollmentView{ID: g.EnrollmentGroupID, ProvisioningStatus: g.ProvisioningStatus, AllocationPolicy: g.AllocationPolicy,
		InitialTwin: g.InitialTwin, Etag: g.Etag, Created: g.CreatedDateTimeUTC, Updated: g.LastUpdatedDateTimeUTC}
	viewOf(g.Attestation, g.ReprovisionPolicy, g.Capabilities, show, &v)
	return v
}

func printEnrollment(p *output.Printer, v enrollmentView) error {
	return p.Print(v, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("id", v.ID)
		if v.DeviceID != "" {
			t.Row("device id", v.DeviceID)
		}
		t.Row("attestation", v.Attestation)
		if v.PrimaryKey != "" {
			t.Row("primary key", v.PrimaryKey)
			t.Row("secondary key", v.SecondaryKey)
		}
		if v.Certificate != nil {
			t.Row("certificate", v.Certificate.SubjectName+" ("+v.Certificate.SHA1Thumbprint+")")
		}
		t.Row("provisioning status", v.ProvisioningStatus)
		t.Row("reprovision policy", v.ReprovisionPolicy)
		t.Row("iot edge", v.IotEdge)
		if v.RegistrationStatus != "" {
			t.Row("registration", v.RegistrationStatus)
		}
		t.Row("etag", v.Etag)
	})
}
