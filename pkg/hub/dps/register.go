package dps

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// Credentials are how a device proves who it is: a SAS token (the
// Authorization header, or the MQTT/AMQP password) or the certificate
// chain of its TLS connection.
type Credentials struct {
	// Token is the SharedAccessSignature text, or "".
	Token string
	// Certificates are the client's certificates, leaf first, or nil.
	Certificates []*x509.Certificate
	// TPM is set when the request carries TPM attestation (refused).
	TPM bool
}

// RegisterRequest is a device's registration.
type RegisterRequest struct {
	// IDScope is the ID scope the device addressed; it must be the
	// service's.
	IDScope string
	// RegistrationID is the id in the request path (or MQTT user name).
	RegistrationID string
	// Payload is the custom data the device sent, kept in the
	// registration state and returned to it.
	Payload json.RawMessage
	// Credentials authenticate the device.
	Credentials Credentials
}

// RetryAfterSeconds is how long a device should wait before polling,
// in whole seconds (at least 1).
func (s *Service) RetryAfterSeconds() int {
	n := int(s.retryAfter.Seconds())
	if n < 1 {
		n = 1
	}
	return n
}

// match is the enrollment a device's credentials were checked against.
type match struct {
	individual *IndividualEnrollment
	group      *EnrollmentGroup
	// keys are the symmetric keys the device gets in the hub (derived
	// ones for a group), nil for X.509.
	keys *iothub.SymmetricKey
	// leaf is the device's certificate for X.509.
	leaf *x509.Certificate
}

func (m *match) status() string {
	if m.individual != nil {
		return m.individual.ProvisioningStatus
	}
	return m.group.ProvisioningStatus
}

func (m *match) name() string {
	if m.individual != nil {
		return "individual enrollment " + m.individual.RegistrationID
	}
	return "enrollment group " + m.group.EnrollmentGroupID
}

// Register authenticates a device's registration, assigns it to the
// hub (creating or updating its identity) and records the registration
// state. It answers, as DPS does, an operation in status "assigning"
// whose outcome Operation returns. Errors are *Error values: the ID
// scope or credentials refused (ErrUnauthorized), no enrollment for
// the id (ErrRegistrationNotFound), a bad request (ErrBadRequest).
// A failed assignment is not an error: the operation ends "failed".
func (s *Service) Register(req *RegisterRequest) (*OperationStatus, error) {
	if err := s.checkScope(req.IDScope); err != nil {
		return nil, err
	}
	if err := ValidateID("registration id", req.RegistrationID); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(req.Payload)) > 0 && !json.Valid(req.Payload) {
		return nil, errf(ErrBadRequest, "the payload is not valid JSON")
	}
	unlock := s.lock(req.RegistrationID)
	defer unlock()
	m, err := s.attest(req.RegistrationID, &req.Credentials)
	if err != nil {
		return nil, err
	}
	if m.status() == StatusDisabled {
		return nil, errf(ErrUnauthorized, "the %s is disabled; enable it (provisioningStatus enabled) to let the device register", m.name())
	}
	opID := newOperationID()
	rec := s.assign(req, m)
	rec.OperationID = opID
	if err := s.update(func(b *bolt.Bucket) error {
		return putJSON(b.Bucket(bucketRegistrations), idKey(req.RegistrationID), rec)
	}); err != nil {
		return nil, errf(ErrInternal, "storing the registration state: %v", err)
	}
	s.log.Info("device registered", "registrationId", req.RegistrationID, "status", rec.State.Status, "deviceId", rec.State.DeviceID, "enrollment", m.name())
	return &OperationStatus{OperationID: opID, Status: RegAssigning}, nil
}

// Operation returns the outcome of a registration operation, after
// checking the device's credentials again, as DPS checks every request.
// Errors match ErrUnauthorized, ErrRegistrationNotFound or
// ErrOperationNotFound.
func (s *Service) Operation(idScope, registrationID, operationID string, cred *Credentials) (*OperationStatus, error) {
	st, err := s.authorizedRecord(idScope, registrationID, cred)
	if err != nil {
		return nil, err
	}
	if st.OperationID != operationID {
		return nil, errf(ErrOperationNotFound, "registration %q has no operation %q (its last is another); register again", registrationID, operationID)
	}
	return &OperationStatus{OperationID: operationID, Status: st.State.Status, RegistrationState: &st.State}, nil
}

// DeviceRegistrationState returns a device's own registration state
// (the device API's state lookup), after checking its credentials.
func (s *Service) DeviceRegistrationState(idScope, registrationID string, cred *Credentials) (*RegistrationState, error) {
	st, err := s.authorizedRecord(idScope, registrationID, cred)
	if err != nil {
		return nil, err
	}
	return &st.State, nil
}

func (s *Service) authorizedRecord(idScope, registrationID string, cred *Credentials) (*registrationRecord, error) {
	if err := s.checkScope(idScope); err != nil {
		return nil, err
	}
	if err := ValidateID("registration id", registrationID); err != nil {
		return nil, err
	}
	if _, err := s.attest(registrationID, cred); err != nil {
		return nil, err
	}
	rec, err := s.record(registrationID)
	if err != nil {
		return nil, errf(ErrInternal, "reading the registration state: %v", err)
	}
	if rec == nil {
		return nil, errf(ErrRegistrationNotFound, "registration %q has not registered yet", registrationID)
	}
	return rec, nil
}

func (s *Service) checkScope(idScope string) error {
	if !strings.EqualFold(idScope, s.idScope) {
		return errf(ErrUnauthorized, "the ID scope %q is not this service's; use %s", idScope, s.idScope)
	}
	return nil
}

// attest finds the enrollment a device's credentials prove it belongs
// to: its individual enrollment first, else an enrollment group whose
// derived key signed its token or whose signing certificate its
// certificate chains to (with CN = registration id).
func (s *Service) attest(regID string, cred *Credentials) (*match, error) {
	if cred.TPM {
		return nil, errf(ErrBadRequest, "TPM attestation is not supported by the local DPS; enroll the device with a symmetric key or an X.509 certificate")
	}
	var tok *sas.Token
	var leaf *x509.Certificate
	switch {
	case cred.Token != "":
		var err error
		if tok, err = s.deviceToken(cred.Token, regID); err != nil {
			return nil, err
		}
	case len(cred.Certificates) > 0:
		leaf = cred.Certificates[0]
		now := s.now()
		if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return nil, errf(ErrUnauthorized, "the client certificate %q is valid from %s to %s only", leaf.Subject.CommonName,
				leaf.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z"))
		}
		if leaf.Subject.CommonName != regID {
			return nil, errf(ErrUnauthorized, "the client certificate's CN %q is not the registration id %q", leaf.Subject.CommonName, regID)
		}
	default:
		return nil, errf(ErrUnauthorized, "the request has neither a SAS token (Authorization header) nor a client certificate")
	}
	ind, err := s.Enrollment(regID)
	if err != nil && !errors.Is(err, ErrEnrollmentNotFound) {
		return nil, err
	}
	if ind != nil {
		return s.attestIndividual(ind, tok, leaf)
	}
	groups, err := s.allGroups()
	if err != nil {
		return nil, err
	}
	tried := 0
	for i := range groups {
		g := &groups[i]
		a := g.Attestation
		switch {
		case tok != nil && a.Type == AttestationSymmetricKey:
			tried++
			var keys []string
			for _, gk := range []string{a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey} {
				k, err := DeriveKey(gk, regID)
				if err == nil {
					keys = append(keys, k)
				}
			}
			if verifyToken(tok, s.now(), keys...) == nil {
				return &match{group: g, keys: &iothub.SymmetricKey{PrimaryKey: keys[0], SecondaryKey: keys[len(keys)-1]}}, nil
			}
		case leaf != nil && a.Type == AttestationX509:
			tried++
			if chainsTo(leaf, cred.Certificates[1:], a.X509.SigningCertificates, s.now()) {
				return &match{group: g, leaf: leaf}, nil
			}
		}
	}
	if tried > 0 {
		how := "token is signed by no enrollment group's derived key"
		if leaf != nil {
			how = "certificate chains to no enrollment group's signing certificate"
		}
		return nil, errf(ErrUnauthorized, "registration %q has no individual enrollment and its %s", regID, how)
	}
	return nil, errf(ErrRegistrationNotFound, "no enrollment for registration id %q: create an individual enrollment or an enrollment group", regID)
}

func (s *Service) attestIndividual(e *IndividualEnrollment, tok *sas.Token, leaf *x509.Certificate) (*match, error) {
	a := e.Attestation
	switch {
	case a.Type == AttestationSymmetricKey && tok != nil:
		if err := verifyToken(tok, s.now(), a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey); err != nil {
			return nil, err
		}
		return &match{individual: e, keys: &iothub.SymmetricKey{PrimaryKey: a.SymmetricKey.PrimaryKey, SecondaryKey: a.SymmetricKey.SecondaryKey}}, nil
	case a.Type == AttestationX509 && leaf != nil:
		if !checkClientCert(leaf, a.X509.ClientCertificates) {
			s1, _ := devicecert.Thumbprints(leaf)
			return nil, errf(ErrUnauthorized, "the client certificate (SHA-1 %s) is not the individual enrollment %q's", s1, e.RegistrationID)
		}
		return &match{individual: e, leaf: leaf}, nil
	}
	have := "a SAS token"
	if leaf != nil {
		have = "a client certificate"
	}
	return nil, errf(ErrUnauthorized, "the individual enrollment %q uses %s attestation but the device sent %s", e.RegistrationID, a.Type, have)
}

func (s *Service) allGroups() ([]EnrollmentGroup, error) {
	var out []EnrollmentGroup
	err := s.view(bucketGroups, func(b *bolt.Bucket) error {
		return b.ForEach(func(_, v []byte) error {
			var g EnrollmentGroup
			if err := json.Unmarshal(v, &g); err != nil {
				return err
			}
			out = append(out, g)
			return nil
		})
	})
	return out, err
}

// echoedPayload is what of a device's custom payload the registration
// state returns to it: the payload when it is a JSON object, else
// nothing. Azure returns only a custom allocation webhook's payload, a
// JSON object (https://learn.microsoft.com/azure/iot-dps/how-to-send-additional-data,
// "DPS returns data to the device"); provisioning-device-client for
// Java sends its custom data as a JSON string (DeviceRegistrationParser's
// String customPayload) and fails on a registration state whose payload
// is not an object (DeviceRegistrationResultParser reads it as a
// JsonObject).
func echoedPayload(p json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(p); len(t) > 0 && t[0] == '{' {
		return p
	}
	return nil
}

// assign creates or updates the device in the hub for a match and
// returns the registration record: assigned, or failed with the
// registry's error.
func (s *Service) assign(req *RegisterRequest, m *match) *registrationRecord {
	now := s.timestamp()
	prev, _ := s.record(req.RegistrationID)
	rec := &registrationRecord{State: RegistrationState{
		RegistrationID:         req.RegistrationID,
		CreatedDateTimeUTC:     now,
		LastUpdatedDateTimeUTC: now,
		Etag:                   newEtag(),
		Payload:                echoedPayload(req.Payload),
	}}
	if prev != nil && prev.State.CreatedDateTimeUTC != "" {
		rec.State.CreatedDateTimeUTC = prev.State.CreatedDateTimeUTC
	}
	var twin *InitialTwin
	var caps *iothub.Capabilities
	var policy *ReprovisionPolicy
	deviceID := req.RegistrationID
	if m.individual != nil {
		e := m.individual
		twin, caps, policy = e.InitialTwin, e.Capabilities, e.ReprovisionPolicy
		if e.DeviceID != "" {
			deviceID = e.DeviceID
		}
	} else {
		g := m.group
		rec.EnrollmentGroupID = g.EnrollmentGroupID
		twin, caps, policy = g.InitialTwin, g.Capabilities, g.ReprovisionPolicy
	}
	if policy == nil {
		policy = &ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	if m.leaf != nil {
		rec.State.X509 = &X509RegistrationResult{CertificateInfo: certInfo(m.leaf), EnrollmentGroupID: rec.EnrollmentGroupID}
	} else {
		rec.State.SymmetricKey = &AttestationRef{EnrollmentGroupID: rec.EnrollmentGroupID}
	}
	reassigned := prev != nil && prev.State.Status == RegAssigned
	if reassigned && !policy.UpdateHubAssignment {
		// Keep the previous assignment as it is.
		rec.State.AssignedHub, rec.State.DeviceID = prev.State.AssignedHub, prev.State.DeviceID
		rec.State.Status, rec.State.Substatus, rec.State.GenerationID = RegAssigned, prev.State.Substatus, prev.State.GenerationID
		return rec
	}
	auth := &iothub.Authentication{Type: iothub.AuthSAS, SymmetricKey: m.keys}
	if m.leaf != nil {
		s1, _ := devicecert.Thumbprints(m.leaf)
		auth = &iothub.Authentication{Type: iothub.AuthSelfSigned, X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &s1}}
	}
	if caps == nil {
		caps = &iothub.Capabilities{}
	}
	d, created, err := s.upsertDevice(deviceID, auth, caps)
	if err != nil {
		return failed(rec, err)
	}
	resetTwin := created || !policy.MigrateDeviceData
	if resetTwin {
		if err := s.resetTwin(deviceID, twin); err != nil {
			return failed(rec, err)
		}
	}
	rec.State.Status = RegAssigned
	rec.State.AssignedHub = s.hubHost
	rec.State.DeviceID = deviceID
	rec.State.GenerationID = d.GenerationID
	switch {
	case !reassigned:
		rec.State.Substatus = SubInitialAssignment
	case resetTwin:
		rec.State.Substatus = SubDeviceDataReset
	default:
		rec.State.Substatus = SubDeviceDataMigrated
	}
	return rec
}

// upsertDevice creates the device, or updates the authentication and
// capabilities of an existing one (its status is kept: a device
// disabled in the hub stays disabled).
func (s *Service) upsertDevice(id string, auth *iothub.Authentication, caps *iothub.Capabilities) (*iothub.Device, bool, error) {
	d, err := s.reg.CreateDevice(&iothub.Device{DeviceID: id, Authentication: auth, Capabilities: caps})
	if err == nil {
		return d, true, nil
	}
	if !errors.Is(err, registry.ErrDeviceAlreadyExists) {
		return nil, false, err
	}
	d, err = s.reg.UpdateDevice(&iothub.Device{DeviceID: id, Authentication: auth, Capabilities: caps}, "*")
	return d, false, err
}

// resetTwin replaces the device twin's tags and desired properties
// with the enrollment's initial twin (empty when it has none), and
// tells Options.DesiredChanged.
func (s *Service) resetTwin(deviceID string, t *InitialTwin) error {
	u := &iothub.TwinUpdate{Tags: json.RawMessage(`{}`), Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{}`)}}
	if t != nil {
		if len(bytes.TrimSpace(t.Tags)) > 0 && string(bytes.TrimSpace(t.Tags)) != "null" {
			u.Tags = t.Tags
		}
		if t.Properties != nil && len(bytes.TrimSpace(t.Properties.Desired)) > 0 && string(bytes.TrimSpace(t.Properties.Desired)) != "null" {
			u.Properties.Desired = t.Properties.Desired
		}
	}
	_, delta, err := s.reg.ReplaceTwin(deviceID, "", u, "*")
	if err != nil {
		return err
	}
	if s.desiredChanged != nil && delta != nil {
		s.desiredChanged(deviceID, delta.Patch, delta.Version)
	}
	return nil
}

// failed marks a registration record failed with err's code.
func failed(rec *registrationRecord, err error) *registrationRecord {
	rec.State.Status = RegFailed
	rec.State.ErrorCode = ErrInternal.Code
	var re *registry.Error
	if errors.As(err, &re) {
		rec.State.ErrorCode = re.Code
	}
	rec.State.ErrorMessage = "assigning the device to the hub failed: " + err.Error()
	return rec
}
