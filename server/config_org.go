package server

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
)

// ControllerConfig is the organisation the log is kept for (README.md: Privacy notices, breaches, reports).
type ControllerConfig struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	// Role is "controller" (default) or "processor": a processor notifies
	// its controllers of a breach without undue delay (Art. 33(2)), not the
	// authority.
	Role string `yaml:"role"`
}

// PersonConfig is a DPO or contact point.
type PersonConfig struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	Phone string `yaml:"phone"`
}

// AuthorityConfig is the supervisory authority.
type AuthorityConfig struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
}

// checkOrg validates the controller, dpo, contact_point and authority blocks.
func (c *Config) checkOrg() error {
	if c.DPO != nil && c.ContactPoint != nil {
		return errors.New("config: give either dpo (a designated data protection officer) or contact_point (where no DPO is required, §38 BDSG), not both")
	}
	one := func(name, v string) error {
		if len(v) > maxContactField || strings.ContainsFunc(v, unicode.IsControl) {
			return fmt.Errorf("config: %s must be one line of at most %d bytes", name, maxContactField)
		}
		return nil
	}
	if k := c.Controller; k != nil {
		switch k.Role {
		case "":
			k.Role = "controller"
		case "controller", "processor":
		default:
			return fmt.Errorf("config: controller.role %q must be controller or processor", k.Role)
		}
		if strings.TrimSpace(k.Name) == "" {
			return errors.New("config: controller.name is required when a controller block is given")
		}
		for n, v := range map[string]string{"controller.name": k.Name, "controller.address": k.Address} {
			if err := one(n, v); err != nil {
				return err
			}
		}
	}
	for prefix, p := range map[string]*PersonConfig{"dpo": c.DPO, "contact_point": c.ContactPoint} {
		if p == nil {
			continue
		}
		if p.Name == "" && p.Email == "" && p.Phone == "" {
			return fmt.Errorf("config: %s needs a name, email or phone", prefix)
		}
		for n, v := range map[string]string{".name": p.Name, ".email": p.Email, ".phone": p.Phone} {
			if err := one(prefix+n, v); err != nil {
				return err
			}
		}
	}
	if a := c.Authority; a != nil {
		for n, v := range map[string]string{"authority.name": a.Name, "authority.url": a.URL} {
			if err := one(n, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// org is the configuration's organisation as the rpc package takes it.
func (c *Config) org() rpc.Org {
	var o rpc.Org
	if k := c.Controller; k != nil {
		o.Controller = &pb.Organisation{Name: k.Name, Address: k.Address, Role: k.Role}
	}
	switch {
	case c.DPO != nil:
		o.Contact = &pb.ContactPerson{Kind: "dpo", Name: c.DPO.Name, Email: c.DPO.Email, Phone: c.DPO.Phone}
	case c.ContactPoint != nil:
		p := c.ContactPoint
		o.Contact = &pb.ContactPerson{Kind: "contact_point", Name: p.Name, Email: p.Email, Phone: p.Phone}
	}
	if a := c.Authority; a != nil {
		o.Authority = &pb.Authority{Name: a.Name, Url: a.URL}
	}
	return o
}

// helpContact is what the help reply tells: the contact block, with the
// DPO or contact point of the dpo/contact_point block when one is given (a
// contact point goes in privacy_contact, never labelled DPO).
func (c *Config) helpContact() policies.Contact {
	pc := c.Contact.policyContact()
	join := func(p *PersonConfig) string {
		var parts []string
		for _, v := range []string{p.Name, p.Email, p.Phone} {
			if v != "" {
				parts = append(parts, v)
			}
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case c.DPO != nil:
		pc.DPOContact = join(c.DPO)
	case c.ContactPoint != nil:
		pc.DPOContact, pc.PrivacyContact = "", join(c.ContactPoint)
	}
	return pc
}
