// Package guideconf holds the configuration files of the oslo.messaging AMQP 1.0
// deployment guide for the real intermediaries, as the containers modules write them
// (listening on port 5672 of every interface): one text for the containers and the
// native test helpers (internal/testenv/realpeer), which adapt its host and port.
package guideconf

// Qdrouterd is the deployment guide's qdrouterd.conf: a standalone router with one
// listener for clients (no authentication, SASL ANONYMOUS) and the address
// distributions of both oslo addressing syntaxes.
const Qdrouterd = `router {
    mode: standalone
    id: amqp1kit-qdrouterd
}

listener {
    host: 0.0.0.0
    port: 5672
    role: normal
    authenticatePeer: no
    saslMechanisms: ANONYMOUS
}

address {
    prefix: unicast
    distribution: closest
}

address {
    prefix: exclusive
    distribution: closest
}

address {
    prefix: broadcast
    distribution: multicast
}

address {
    prefix: openstack.org/om/rpc/multicast
    distribution: multicast
}

address {
    prefix: openstack.org/om/rpc/unicast
    distribution: closest
}

address {
    prefix: openstack.org/om/rpc/anycast
    distribution: balanced
}

address {
    prefix: openstack.org/om/notify/multicast
    distribution: multicast
}

address {
    prefix: openstack.org/om/notify/unicast
    distribution: closest
}

address {
    prefix: openstack.org/om/notify/anycast
    distribution: balanced
}
`

// Qpidd is the deployment guide's qpidd.conf: no authentication, queues made on
// demand for the exclusive and unicast prefixes, topics for broadcast, with the port
// and interface a container needs.
const Qpidd = `port=5672
interface=0.0.0.0
auth=no
queue-patterns=exclusive
queue-patterns=unicast
topic-patterns=broadcast
`
