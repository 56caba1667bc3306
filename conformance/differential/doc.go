// Package differential finds how two AMQP 1.0 intermediaries differ by machine: it
// runs the same scripted scenario against each, records every frame through a proxy,
// masks what legitimately differs between runs, and aligns the two traces frame by
// frame. The project holds its fakes against the real programs with it (fakerouter
// against qdrouterd 1.19.0, fakebroker against qpidd 1.39.0: FINDINGS.md); anyone can
// use it to learn how their intermediary differs from another.
//
//	a := differential.Target{Name: "fakerouter", URL: "amqp://127.0.0.1:5672"}
//	b := differential.Target{Name: "qdrouterd", URL: "amqp://127.0.0.1:15672"}
//	err := differential.Run(ctx, os.Stdout, nil, a, b) // every scenario, reports printed
//
// # Recording
//
// Record (and Compare, which records A then B) starts a TCP proxy on 127.0.0.1:0 in
// front of the target and hands the scenario the proxy's URL (Env.URL). The proxy
// forwards bytes unchanged in both directions and cuts each direction into protocol
// headers, SASL frames and AMQP frames, decoded with the project's codec; a transfer's
// message (possibly split over several frames) is decoded too. It never fails on
// what it cannot decode: garbage, an oversized or undecodable frame stops the
// decoding of that direction (recorded as "undecoded"), and forwarding goes on. It
// does plain TCP only: with TLS (amqps, or the AMQP TLS header) there is nothing to
// read, so the frames after the TLS header are not recorded.
//
// # Normalization
//
// Frames are described field by field in the specification's order, flattened
// ("source.address", "state.error.condition", "message.header.ttl"), with fields at
// their default left out, except the settle modes and the termini (a null source is
// shown as source=null, an empty one as source={}). Then what legitimately differs
// between two runs or two implementations is masked:
//
//   - container-ids, link names, message-ids and correlation-ids become <container1>,
//     <link1>, <id1>... numbered in the order first seen (connection by connection,
//     the client's frames first), and wherever they appear inside other strings;
//   - the addresses of dynamic nodes become <dyn1>...; the attach that names one also
//     shows its shape (source.address.shape=amqp:/_topo/0/<container2>/temp.<x>), where
//     known names are replaced by their tokens and generated runs of letters and digits
//     by <x>: the shape is compared;
//   - the suffixes a scenario makes with Env.Unique become <u1>, <u2>...;
//   - handles and channels are renumbered per connection and side (#1, #2...);
//     delivery tags per link (<tag1>...); delivery-ids are shown relative to the first
//     one each side used on the session (+0, +1...), transfer-ids relative to the
//     side's begin (next-outgoing-id), delivery-counts relative to the link's
//     initial-delivery-count; the bases themselves show as <n>;
//   - timestamps (creation-time, absolute-expiry-time) become <time>, and values that
//     change with every connection (qdrouterd's qd.conn-id) <int>.
//
// Everything else is compared: outcomes, settle modes, credit, drain, errors (the
// condition; the description is shown and marked "(not compared)"), capabilities,
// open properties (product, version...), max-frame-size, channel-max, idle-time-out,
// begin windows and handle-max, and the message's header, annotations and properties
// as the receiver got them. A remaining ttl compares within 5% or 2 s. The session
// fields of flow frames (next-incoming-id, incoming-window, next-outgoing-id,
// outgoing-window) are shown but not compared: they depend on how frames crossed in
// time. Empty frames (keep-alives) are left out unless Options.KeepEmpty.
//
// # Alignment
//
// Order matters within a link, not across links: flows and dispositions of different
// links interleave by timing alone. So each connection is split into lanes — the
// connection itself (headers, SASL, open, close), each session (begin, end, session
// flows), and each link (attach, flow, transfer, disposition, detach; a disposition
// belongs to the link of its deliveries) — and the lanes of A and B are aligned
// separately, by a longest common subsequence of equal frames. Within a lane, a run
// of consecutive flows and dispositions from one side is put in a form that does not
// depend on timing: a disposition of a range of deliveries counts as one disposition
// per delivery, a link flow superseded by a later one of the same run is dropped
// (unless it drains or asks for an echo), and the run is compared as a set. A frame
// found in both lanes at different places (a flow sent before a transfer in one run,
// after it in the other) is reported as moved. Neither is a difference unless
// Options.StrictOrder, which compares the lanes exactly as sent. Frames left over between two common ones are paired by
// direction and type (changed, with the differing fields listed); the rest are only
// in A or only in B.
//
// Report.Equal compares what the intermediaries sent. The client's frames are shown
// for context but not compared: the client runs the same script, and where it sends
// something else it is because an intermediary did. The scenario's own result (an
// error such as a message that never came) is compared too.
//
// # Scenarios
//
// A Scenario is a Go function of a context and an Env. It connects through Env.URL
// (Env.Dial for go-amqp, which then closes gracefully so that the intermediary's close
// is always recorded), and must be deterministic: each step waits for its effect — an
// attach answered, a message received, or Env.Quiet, which waits until nothing has
// crossed the proxy for a while — before the next, and a step that may never complete
// on some intermediary is bounded by Env.Step and noted (Env.Note) rather than failed.
// Scenarios returns the project's library, which covers what a stand-in for qdrouterd
// or qpidd under oslo.messaging traffic must match: open, SASL and begin limits,
// credit per distribution, multicast copies, settle modes, outcomes, redelivery
// headers, message sections and remaining ttl, null termini, $management, dynamic
// nodes, anonymous relay, drain, detach and close. They use the oslo deployment
// guide's address prefixes, which the real programs configured as the guide says and
// the fakes both serve.
//
// Every goroutine a Record starts ends before it returns: the scenario's connections
// are closed and the proxy waits for its own.
package differential
