package dps

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// PutEnrollment creates or replaces the individual enrollment e.
// Empty symmetric keys are generated, certificates get their info,
// provisioningStatus defaults to enabled and reprovisionPolicy to
// re-assign and migrate; createdDateTimeUtc is kept across updates and
// the etag changes. ifMatch ("" or "*" for any) must be the current
// etag when given. Errors match ErrBadRequest or ErrPreconditionFailed.
func (s *Service) PutEnrollment(e *IndividualEnrollment, ifMatch string) (*IndividualEnrollment, error) {
	if e == nil {
		return nil, errf(ErrBadRequest, "no enrollment")
	}
	if err := ValidateID("registration id", e.RegistrationID); err != nil {
		return nil, err
	}
	if err := checkDeviceID(e.DeviceID); err != nil {
		return nil, err
	}
	if err := checkAttestation(e.Attestation, false); err != nil {
		return nil, err
	}
	if err := checkCommon(&e.ProvisioningStatus, e.AllocationPolicy, &e.ReprovisionPolicy, e.InitialTwin); err != nil {
		return nil, err
	}
	e.RegistrationState = nil
	out := *e
	if err := s.putStamped(bucketEnrollments, e.RegistrationID, ifMatch, "enrollment "+e.RegistrationID, &out,
		&out.CreatedDateTimeUTC, &out.LastUpdatedDateTimeUTC, &out.Etag); err != nil {
		return nil, err
	}
	return &out, nil
}

// Enrollment returns the individual enrollment of registrationID (in
// any case) with its registration state, or an error matching
// ErrEnrollmentNotFound.
func (s *Service) Enrollment(registrationID string) (*IndividualEnrollment, error) {
	var e IndividualEnrollment
	err := s.reg.ViewExtension(Extension, func(b *bolt.Bucket) error {
		if err := getJSON(b.Bucket(bucketEnrollments), idKey(registrationID), &e); err != nil {
			return err
		}
		if e.RegistrationID == "" {
			return errf(ErrEnrollmentNotFound, "there is no individual enrollment with registration id %q", registrationID)
		}
		var rec registrationRecord
		if err := getJSON(b.Bucket(bucketRegistrations), idKey(registrationID), &rec); err != nil {
			return err
		}
		if rec.State.RegistrationID != "" && rec.EnrollmentGroupID == "" {
			e.RegistrationState = &rec.State
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// DeleteEnrollment deletes the individual enrollment of registrationID
// and its registration state (the device stays in the hub, as with
// DPS). Errors match ErrEnrollmentNotFound or ErrPreconditionFailed.
func (s *Service) DeleteEnrollment(registrationID, ifMatch string) error {
	return s.update(func(b *bolt.Bucket) error {
		eb := b.Bucket(bucketEnrollments)
		var cur IndividualEnrollment
		if err := getJSON(eb, idKey(registrationID), &cur); err != nil {
			return err
		}
		if cur.RegistrationID == "" {
			return errf(ErrEnrollmentNotFound, "there is no individual enrollment with registration id %q", registrationID)
		}
		if err := checkEtag(ifMatch, cur.Etag, true, "enrollment "+registrationID); err != nil {
			return err
		}
		rb := b.Bucket(bucketRegistrations)
		var rec registrationRecord
		if err := getJSON(rb, idKey(registrationID), &rec); err != nil {
			return err
		}
		if rec.State.RegistrationID != "" && rec.EnrollmentGroupID == "" {
			if err := rb.Delete(idKey(registrationID)); err != nil {
				return err
			}
		}
		return eb.Delete(idKey(registrationID))
	})
}

// PutGroup creates or replaces the enrollment group g, as PutEnrollment
// does for individual enrollments. Errors match ErrBadRequest or
// ErrPreconditionFailed.
func (s *Service) PutGroup(g *EnrollmentGroup, ifMatch string) (*EnrollmentGroup, error) {
	if g == nil {
		return nil, errf(ErrBadRequest, "no enrollment group")
	}
	if err := ValidateID("enrollment group id", g.EnrollmentGroupID); err != nil {
		return nil, err
	}
	if err := checkAttestation(g.Attestation, true); err != nil {
		return nil, err
	}
	if err := checkCommon(&g.ProvisioningStatus, g.AllocationPolicy, &g.ReprovisionPolicy, g.InitialTwin); err != nil {
		return nil, err
	}
	out := *g
	if err := s.putStamped(bucketGroups, g.EnrollmentGroupID, ifMatch, "enrollment group "+g.EnrollmentGroupID, &out,
		&out.CreatedDateTimeUTC, &out.LastUpdatedDateTimeUTC, &out.Etag); err != nil {
		return nil, err
	}
	return &out, nil
}

// putStamped stores item under id in bucket after checking ifMatch
// against the stored item's etag; it keeps the stored creation time and
// sets the update time and a new etag through the pointers into item.
func (s *Service) putStamped(bucket []byte, id, ifMatch, what string, item any, created, updated, etag *string) error {
	now := s.timestamp()
	return s.update(func(b *bolt.Bucket) error {
		ib := b.Bucket(bucket)
		var cur struct {
			Etag               string `json:"etag"`
			CreatedDateTimeUTC string `json:"createdDateTimeUtc"`
		}
		if err := getJSON(ib, idKey(id), &cur); err != nil {
			return err
		}
		if err := checkEtag(ifMatch, cur.Etag, ib.Get(idKey(id)) != nil, what); err != nil {
			return err
		}
		*created = now
		if cur.CreatedDateTimeUTC != "" {
			*created = cur.CreatedDateTimeUTC
		}
		*updated = now
		*etag = newEtag()
		return putJSON(ib, idKey(id), item)
	})
}

// Group returns the enrollment group with id groupID (in any case), or
// an error matching ErrGroupNotFound.
func (s *Service) Group(groupID string) (*EnrollmentGroup, error) {
	var g EnrollmentGroup
	err := s.view(bucketGroups, func(b *bolt.Bucket) error {
		if err := getJSON(b, idKey(groupID), &g); err != nil {
			return err
		}
		if g.EnrollmentGroupID == "" {
			return errf(ErrGroupNotFound, "there is no enrollment group with id %q", groupID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteGroup deletes an enrollment group and the registration states
// of its devices. Errors match ErrGroupNotFound or ErrPreconditionFailed.
func (s *Service) DeleteGroup(groupID, ifMatch string) error {
	return s.update(func(b *bolt.Bucket) error {
		gb := b.Bucket(bucketGroups)
		var cur EnrollmentGroup
		if err := getJSON(gb, idKey(groupID), &cur); err != nil {
			return err
		}
		if cur.EnrollmentGroupID == "" {
			return errf(ErrGroupNotFound, "there is no enrollment group with id %q", groupID)
		}
		if err := checkEtag(ifMatch, cur.Etag, true, "enrollment group "+groupID); err != nil {
			return err
		}
		rb := b.Bucket(bucketRegistrations)
		var stale [][]byte
		err := rb.ForEach(func(k, v []byte) error {
			var rec registrationRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			if strings.EqualFold(rec.EnrollmentGroupID, groupID) {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := rb.Delete(k); err != nil {
				return err
			}
		}
		return gb.Delete(idKey(groupID))
	})
}

// RegistrationState returns the registration state of registrationID,
// or an error matching ErrRegistrationNotFound.
func (s *Service) RegistrationState(registrationID string) (*RegistrationState, error) {
	rec, err := s.record(registrationID)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, errf(ErrRegistrationNotFound, "there is no registration state for registration id %q", registrationID)
	}
	return &rec.State, nil
}

// DeleteRegistrationState deletes a registration state, so that the
// device's next registration is an initial assignment again. Errors
// match ErrRegistrationNotFound or ErrPreconditionFailed.
func (s *Service) DeleteRegistrationState(registrationID, ifMatch string) error {
	return s.update(func(b *bolt.Bucket) error {
		rb := b.Bucket(bucketRegistrations)
		var rec registrationRecord
		if err := getJSON(rb, idKey(registrationID), &rec); err != nil {
			return err
		}
		if rec.State.RegistrationID == "" {
			return errf(ErrRegistrationNotFound, "there is no registration state for registration id %q", registrationID)
		}
		if err := checkEtag(ifMatch, rec.State.Etag, true, "registration state "+registrationID); err != nil {
			return err
		}
		return rb.Delete(idKey(registrationID))
	})
}

// record reads the registration record of an id (nil when none).
func (s *Service) record(registrationID string) (*registrationRecord, error) {
	var rec registrationRecord
	err := s.view(bucketRegistrations, func(b *bolt.Bucket) error {
		return getJSON(b, idKey(registrationID), &rec)
	})
	if err != nil || rec.State.RegistrationID == "" {
		return nil, err
	}
	return &rec, nil
}

// getJSON decodes the value at key into v; a missing key leaves v as it is.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return nil
	}
	return json.Unmarshal(data, v)
}

// checkEtag implements If-Match: "" and "*" match anything that
// exists; another tag must be the current one (quoted or not).
func checkEtag(ifMatch, current string, exists bool, what string) error {
	if ifMatch == "" || ifMatch == "*" {
		return nil
	}
	if !exists || registry.UnquoteEtag(ifMatch) != current {
		return errf(ErrPreconditionFailed, "the etag given for %s is not its current one; read it again and retry", what)
	}
	return nil
}

// Page is one page of a query.
type Page[T any] struct {
	Items []T
	// Continuation is the token of the next page, "" on the last one.
	Continuation string
}

// DefaultPageSize and MaxPageSize bound a page of query results
// (x-ms-max-item-count).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// checkQuery accepts the queries of the service API the local service
// answers: "*" and "SELECT * FROM {collection}" (every item).
func checkQuery(q, collection string) error {
	norm := strings.Join(strings.Fields(strings.ToLower(q)), " ")
	if norm == "*" || norm == "select * from "+strings.ToLower(collection) || norm == "select * from c" {
		return nil
	}
	return errf(ErrBadRequest, "the local DPS answers only the query \"*\" (every %s), not %q", collection, q)
}

// queryBucket returns a page of a bucket's values after the key in the
// continuation token, those keep() accepts.
func queryBucket[T any](s *Service, bucket []byte, cont string, max int, keep func(*T) bool) (*Page[T], error) {
	if max <= 0 {
		max = DefaultPageSize
	}
	if max > MaxPageSize {
		max = MaxPageSize
	}
	var after []byte
	if cont != "" {
		k, err := base64.RawURLEncoding.DecodeString(cont)
		if err != nil {
			return nil, errf(ErrBadRequest, "the continuation token %q is not one this service gave", cont)
		}
		after = k
	}
	p := &Page[T]{Items: []T{}}
	err := s.view(bucket, func(b *bolt.Bucket) error {
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
			if k != nil && string(k) == string(after) {
				k, v = c.Next()
			}
		}
		var last []byte
		for ; k != nil; k, v = c.Next() {
			if len(p.Items) == max {
				p.Continuation = base64.RawURLEncoding.EncodeToString(last)
				return nil
			}
			var item T
			if err := json.Unmarshal(v, &item); err != nil {
				return err
			}
			if keep != nil && !keep(&item) {
				continue
			}
			p.Items = append(p.Items, item)
			last = append(last[:0], k...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// QueryEnrollments returns a page of individual enrollments (query "*").
func (s *Service) QueryEnrollments(query, continuation string, max int) (*Page[IndividualEnrollment], error) {
	if err := checkQuery(query, "enrollments"); err != nil {
		return nil, err
	}
	return queryBucket[IndividualEnrollment](s, bucketEnrollments, continuation, max, nil)
}

// QueryGroups returns a page of enrollment groups (query "*").
func (s *Service) QueryGroups(query, continuation string, max int) (*Page[EnrollmentGroup], error) {
	if err := checkQuery(query, "enrollmentGroups"); err != nil {
		return nil, err
	}
	return queryBucket[EnrollmentGroup](s, bucketGroups, continuation, max, nil)
}

// QueryGroupRegistrations returns a page of the registration states of
// an enrollment group's devices. Errors match ErrGroupNotFound.
func (s *Service) QueryGroupRegistrations(groupID, continuation string, max int) (*Page[RegistrationState], error) {
	if _, err := s.Group(groupID); err != nil {
		return nil, err
	}
	p, err := queryBucket[registrationRecord](s, bucketRegistrations, continuation, max, func(r *registrationRecord) bool {
		return strings.EqualFold(r.EnrollmentGroupID, groupID)
	})
	if err != nil {
		return nil, err
	}
	out := &Page[RegistrationState]{Items: make([]RegistrationState, 0, len(p.Items)), Continuation: p.Continuation}
	for _, r := range p.Items {
		out.Items = append(out.Items, r.State)
	}
	return out, nil
}
