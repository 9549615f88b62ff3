package provider

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-jsontypes/jsontypes"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

type networkAttachmentModel struct {
	ID              types.String         `tfsdk:"id"`
	Cluster         types.String         `tfsdk:"cluster"`
	Namespace       types.String         `tfsdk:"namespace"`
	Name            types.String         `tfsdk:"name"`
	CNIVersion      types.String         `tfsdk:"cni_version"`
	ResourceName    types.String         `tfsdk:"resource_name"`
	Macvlan         *macvlanModel        `tfsdk:"macvlan"`
	Ipvlan          *ipvlanModel         `tfsdk:"ipvlan"`
	Bridge          *bridgeModel         `tfsdk:"bridge"`
	HostDevice      *hostDeviceModel     `tfsdk:"host_device"`
	IPAM            *ipamModel           `tfsdk:"ipam"`
	Config          jsontypes.Normalized `tfsdk:"config"`
	PodInterface    types.String         `tfsdk:"pod_interface"`
	PodDefaultRoute []types.String       `tfsdk:"pod_default_route"`
	RenderedConfig  jsontypes.Normalized `tfsdk:"rendered_config"`
	PodAnnotation   types.String         `tfsdk:"pod_annotation"`
}

type macvlanModel struct {
	Master types.String `tfsdk:"master"`
	Mode   types.String `tfsdk:"mode"`
	MTU    types.Int64  `tfsdk:"mtu"`
}

type ipvlanModel struct {
	Master types.String `tfsdk:"master"`
	Mode   types.String `tfsdk:"mode"`
	MTU    types.Int64  `tfsdk:"mtu"`
}

type bridgeModel struct {
	Name      types.String `tfsdk:"name"`
	IsGateway types.Bool   `tfsdk:"is_gateway"`
	IPMasq    types.Bool   `tfsdk:"ip_masq"`
	MTU       types.Int64  `tfsdk:"mtu"`
	Vlan      types.Int64  `tfsdk:"vlan"`
}

type hostDeviceModel struct {
	Device types.String `tfsdk:"device"`
}

type ipamModel struct {
	Whereabouts *whereaboutsModel `tfsdk:"whereabouts"`
	Static      *staticIPAMModel  `tfsdk:"static"`
	HostLocal   *hostLocalModel   `tfsdk:"host_local"`
}

type whereaboutsModel struct {
	Range      types.String   `tfsdk:"range"`
	RangeStart types.String   `tfsdk:"range_start"`
	RangeEnd   types.String   `tfsdk:"range_end"`
	Gateway    types.String   `tfsdk:"gateway"`
	Exclude    []types.String `tfsdk:"exclude"`
}

type staticIPAMModel struct {
	Addresses []staticAddressModel `tfsdk:"addresses"`
	Routes    []cniRouteModel      `tfsdk:"routes"`
}

type staticAddressModel struct {
	Address types.String `tfsdk:"address"`
	Gateway types.String `tfsdk:"gateway"`
}

type cniRouteModel struct {
	Dst types.String `tfsdk:"dst"`
	GW  types.String `tfsdk:"gw"`
}

type hostLocalModel struct {
	Subnet     types.String    `tfsdk:"subnet"`
	RangeStart types.String    `tfsdk:"range_start"`
	RangeEnd   types.String    `tfsdk:"range_end"`
	Gateway    types.String    `tfsdk:"gateway"`
	Routes     []cniRouteModel `tfsdk:"routes"`
}

// cniConf is the part of a CNI configuration the typed attributes describe, in the field
// names of the reference plugins (macvlan, ipvlan, bridge, host-device) and IPAMs.
type cniConf struct {
	CNIVersion string    `json:"cniVersion"`
	Name       string    `json:"name"`
	Type       string    `json:"type"`
	Master     string    `json:"master,omitempty"`
	Mode       string    `json:"mode,omitempty"`
	Bridge     string    `json:"bridge,omitempty"`
	IsGateway  bool      `json:"isGateway,omitempty"`
	IPMasq     bool      `json:"ipMasq,omitempty"`
	MTU        int64     `json:"mtu,omitempty"`
	Vlan       int64     `json:"vlan,omitempty"`
	Device     string    `json:"device,omitempty"`
	IPAM       *ipamConf `json:"ipam,omitempty"`
}

type ipamConf struct {
	Type       string             `json:"type"`
	Range      string             `json:"range,omitempty"`
	RangeStart string             `json:"range_start,omitempty"`
	RangeEnd   string             `json:"range_end,omitempty"`
	Gateway    string             `json:"gateway,omitempty"`
	Exclude    []string           `json:"exclude,omitempty"`
	Addresses  []staticAddrConf   `json:"addresses,omitempty"`
	Ranges     [][]hostLocalRange `json:"ranges,omitempty"`
	Routes     []routeConf        `json:"routes,omitempty"`
}

type staticAddrConf struct {
	Address string `json:"address"`
	Gateway string `json:"gateway,omitempty"`
}

type hostLocalRange struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

type routeConf struct {
	Dst string `json:"dst"`
	GW  string `json:"gw,omitempty"`
}

// DefaultCNIVersion is the cniVersion of typed attachments unless cni_version says otherwise;
// the seeds' Multus set-up uses it.
const DefaultCNIVersion = "0.3.1"

// typed tells whether the attachment is described by typed attributes (not raw config).
func (m *networkAttachmentModel) typed() bool {
	return m.Macvlan != nil || m.Ipvlan != nil || m.Bridge != nil || m.HostDevice != nil
}

// toConf renders the typed attributes; the model's values must be known.
func (m *networkAttachmentModel) toConf() cniConf {
	c := cniConf{CNIVersion: m.CNIVersion.ValueString(), Name: m.Name.ValueString()}
	if c.CNIVersion == "" {
		c.CNIVersion = DefaultCNIVersion
	}
	switch {
	case m.Macvlan != nil:
		c.Type, c.Master, c.Mode, c.MTU = "macvlan", m.Macvlan.Master.ValueString(), m.Macvlan.Mode.ValueString(), m.Macvlan.MTU.ValueInt64()
	case m.Ipvlan != nil:
		c.Type, c.Master, c.Mode, c.MTU = "ipvlan", m.Ipvlan.Master.ValueString(), m.Ipvlan.Mode.ValueString(), m.Ipvlan.MTU.ValueInt64()
	case m.Bridge != nil:
		b := m.Bridge
		c.Type, c.Bridge, c.IsGateway, c.IPMasq, c.MTU, c.Vlan = "bridge", b.Name.ValueString(), b.IsGateway.ValueBool(), b.IPMasq.ValueBool(), b.MTU.ValueInt64(), b.Vlan.ValueInt64()
	case m.HostDevice != nil:
		c.Type, c.Device = "host-device", m.HostDevice.Device.ValueString()
	}
	c.IPAM = m.IPAM.toConf()
	return c
}

func (p *ipamModel) toConf() *ipamConf {
	switch {
	case p == nil:
		return nil
	case p.Whereabouts != nil:
		w := p.Whereabouts
		return &ipamConf{Type: "whereabouts", Range: w.Range.ValueString(), RangeStart: w.RangeStart.ValueString(),
			RangeEnd: w.RangeEnd.ValueString(), Gateway: w.Gateway.ValueString(), Exclude: stringsOf(w.Exclude)}
	case p.Static != nil:
		c := &ipamConf{Type: "static", Routes: routesConf(p.Static.Routes)}
		for _, a := range p.Static.Addresses {
			c.Addresses = append(c.Addresses, staticAddrConf{Address: a.Address.ValueString(), Gateway: a.Gateway.ValueString()})
		}
		return c
	case p.HostLocal != nil:
		h := p.HostLocal
		return &ipamConf{Type: "host-local", Routes: routesConf(h.Routes), Ranges: [][]hostLocalRange{{{
			Subnet: h.Subnet.ValueString(), RangeStart: h.RangeStart.ValueString(), RangeEnd: h.RangeEnd.ValueString(), Gateway: h.Gateway.ValueString(),
		}}}}
	}
	return &ipamConf{} // "ipam": {} with no IPAM chosen
}

func routesConf(rs []cniRouteModel) []routeConf {
	var out []routeConf
	for _, r := range rs {
		out = append(out, routeConf{Dst: r.Dst.ValueString(), GW: r.GW.ValueString()})
	}
	return out
}

func stringsOf(vs []types.String) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ValueString())
	}
	return out
}

func stringValues(ss []string) []types.String {
	if len(ss) == 0 {
		return nil
	}
	out := make([]types.String, 0, len(ss))
	for _, s := range ss {
		out = append(out, types.StringValue(s))
	}
	return out
}

// render is the CNI configuration JSON of the typed attributes.
func render(c cniConf) string {
	b, _ := json.Marshal(c) // plain strings, numbers and bools: cannot fail
	return string(b)
}

// parseConf reads a configuration back into the typed form. ok is false when the typed
// attributes cannot express it exactly (another plugin, an unknown field, another name): the
// attachment is then shown as raw config.
func parseConf(raw, name string) (c cniConf, ok bool) {
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Name != name {
		return c, false
	}
	switch c.Type {
	case "macvlan", "ipvlan", "bridge", "host-device":
	default:
		return c, false
	}
	if c.IPAM != nil && !typedIPAM(c.IPAM) {
		return c, false
	}
	return c, sameJSON(render(c), raw)
}

// sameJSON compares two JSON documents semantically (formatting and key order aside).
func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// typedIPAM tells whether the ipam attribute can express the IPAM configuration.
func typedIPAM(c *ipamConf) bool {
	switch c.Type {
	case "whereabouts", "static":
		return true
	case "host-local":
		return len(c.Ranges) == 1 && len(c.Ranges[0]) == 1
	}
	return false
}

// fromConf sets the typed attributes from a parsed configuration.
func (m *networkAttachmentModel) fromConf(c cniConf) {
	m.Macvlan, m.Ipvlan, m.Bridge, m.HostDevice = nil, nil, nil, nil
	m.CNIVersion = types.StringValue(c.CNIVersion)
	switch c.Type {
	case "macvlan":
		m.Macvlan = &macvlanModel{Master: types.StringValue(c.Master), Mode: types.StringValue(c.Mode), MTU: int64OrNull(c.MTU)}
	case "ipvlan":
		m.Ipvlan = &ipvlanModel{Master: types.StringValue(c.Master), Mode: types.StringValue(c.Mode), MTU: int64OrNull(c.MTU)}
	case "bridge":
		m.Bridge = &bridgeModel{Name: types.StringValue(c.Bridge), IsGateway: types.BoolValue(c.IsGateway), IPMasq: types.BoolValue(c.IPMasq), MTU: int64OrNull(c.MTU), Vlan: int64OrNull(c.Vlan)}
	case "host-device":
		m.HostDevice = &hostDeviceModel{Device: types.StringValue(c.Device)}
	}
	m.IPAM = ipamFromConf(c.IPAM)
}

func ipamFromConf(c *ipamConf) *ipamModel {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "whereabouts":
		return &ipamModel{Whereabouts: &whereaboutsModel{Range: types.StringValue(c.Range), RangeStart: stringOrNull(c.RangeStart),
			RangeEnd: stringOrNull(c.RangeEnd), Gateway: stringOrNull(c.Gateway), Exclude: stringValues(c.Exclude)}}
	case "static":
		s := &staticIPAMModel{Routes: routesFromConf(c.Routes)}
		for _, a := range c.Addresses {
			s.Addresses = append(s.Addresses, staticAddressModel{Address: types.StringValue(a.Address), Gateway: stringOrNull(a.Gateway)})
		}
		return &ipamModel{Static: s}
	case "host-local":
		r := c.Ranges[0][0] // parseConf refused other shapes
		return &ipamModel{HostLocal: &hostLocalModel{Subnet: types.StringValue(r.Subnet), RangeStart: stringOrNull(r.RangeStart),
			RangeEnd: stringOrNull(r.RangeEnd), Gateway: stringOrNull(r.Gateway), Routes: routesFromConf(c.Routes)}}
	}
	return nil // parseConf refused other types
}

func routesFromConf(rs []routeConf) []cniRouteModel {
	var out []cniRouteModel
	for _, r := range rs {
		out = append(out, cniRouteModel{Dst: types.StringValue(r.Dst), GW: stringOrNull(r.GW)})
	}
	return out
}

func stringOrNull(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func int64OrNull(n int64) types.Int64 {
	if n == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(n)
}

// podAnnotation is the k8s.v1.cni.cncf.io/networks value that attaches a pod to the
// attachment, in the JSON form of the seed's busybox pod (interface name, default route).
func podAnnotation(ns, name, itf string, defaultRoute []string) string {
	type sel struct {
		Name         string   `json:"name"`
		Namespace    string   `json:"namespace"`
		Interface    string   `json:"interface,omitempty"`
		DefaultRoute []string `json:"default-route,omitempty"`
	}
	b, _ := json.Marshal([]sel{{Name: name, Namespace: ns, Interface: itf, DefaultRoute: defaultRoute}})
	return string(b)
}

// rawConf is what nodenet needs to know of any CNI configuration: its plugin and the host
// interface it uses, for the checks on the nodes.
type rawConf struct {
	CNIVersion string `json:"cniVersion"`
	Type       string `json:"type"`
	Master     string `json:"master"`
	Device     string `json:"device"`
}

func parseRaw(s string) (rawConf, error) {
	var r rawConf
	var obj map[string]any
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return r, fmt.Errorf("not a JSON object: %v", err)
	}
	if t, ok := obj["type"].(string); !ok || t == "" {
		return r, fmt.Errorf(`a CNI configuration needs "type", the plugin's name (like "macvlan")`)
	}
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, fmt.Errorf(`"cniVersion", "type", "master" and "device" must be strings: %v`, err)
	}
	return r, nil
}
