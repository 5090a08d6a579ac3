// Sends a page view, a page ping, structured, self-describing and ecommerce
// events with contexts through the real @snowplow/node-tracker to the
// collector named by the first argument. Used by node/snowplow_test.go.
//
//   node send.js COLLECTOR_URL post|get base64|plain TAG [anonymous]
//
// TAG ends up in the app id (shop-TAG) so that several runs can share one
// node. With "anonymous" the emitter asks for server-side anonymisation
// (the SP-Anonymous header). Prints {"label": event id, …} as JSON and exits
// non-zero if the collector refused a request.
const sp = require('@snowplow/node-tracker')

const [endpoint, method, encoding, tag, anonymous] = process.argv.slice(2)
const failures = []
const tracker = sp.newTracker(
  { namespace: 'sluice-test', appId: 'shop-' + tag, encodeBase64: encoding === 'base64' },
  {
    endpoint,
    eventMethod: method,
    bufferSize: method === 'post' ? 20 : 1,
    retryFailedRequests: false,
    serverAnonymization: anonymous === 'anonymous',
    onRequestFailure: (failure, response) => failures.push(`${response ? response.status : 'no response'}: ${failure.message || ''}`),
  },
)
tracker.setUserId('u-42')
tracker.setUseragent('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36')
tracker.setLang('de-DE')
tracker.setTimezone('Europe/Berlin')
tracker.setScreenResolution('1920', '1080')
tracker.setViewport('1280', '720')
tracker.setSessionId('7c2d1a4e-1f0b-4c7e-9a7e-2f4c9d8b6a01')
tracker.setSessionIndex(3)
// Only the POST run names a domain user id, so the GET runs show the
// network user id standing in for it.
if (method === 'post' && anonymous !== 'anonymous') {
  tracker.setDomainUserId('d0d0d0d0-1111-4222-8333-444455556666')
}

const user = (id) => ({ schema: 'iglu:com.acme/user/jsonschema/1-0-0', data: { id } })
const page = { pageUrl: 'https://shop.example/pricing?utm_source=newsletter', pageTitle: 'Preise — Größen ✓ 👟', referrer: 'https://www.google.com/' }
const ids = {}
const track = (label, event, context, timestamp) => { ids[label] = tracker.track(event, context, timestamp).eid }

// A true timestamp (ttm) is the event time as it stands.
track('page_view', sp.buildPageView(page), [user('u1')], { type: 'ttm', value: Date.UTC(2026, 0, 2, 3, 4, 5) })
track('page_ping', sp.buildPagePing({ ...page, minXOffset: 0, maxXOffset: 10, minYOffset: 20, maxYOffset: 300 }))
// Created an hour before it is sent: the event time is an hour before the
// collector received it.
track('struct', sp.buildStructEvent({ category: 'shop', action: 'add-to-basket', label: 'sku-1', property: 'red', value: 2.5 }),
  null, { type: 'dtm', value: Date.now() - 3600 * 1000 })
track('link_click', sp.buildSelfDescribingEvent({
  event: { schema: 'iglu:com.acme/link_click/jsonschema/1-0-0', data: { targetUrl: 'https://shop.example/buy', elementId: 'buy-button', text: 'Jetzt kaufen — 👟' } },
}), [user('u1'), user('u2'), { schema: 'iglu:com.acme/ab-test/jsonschema/1-0-0', data: { variant: 'b' } }])
// A schema the registry lacks (accepted by default), with a camelCase name,
// and contexts of two versions of one schema.
track('add_to_cart', sp.buildSelfDescribingEvent({
  event: { schema: 'iglu:com.acme/addToCart/jsonschema/1-0-0', data: { sku: 'sku-1', quantity: 2 } },
}), [{ schema: 'iglu:com.acme/ab-test/jsonschema/1-0-0', data: { variant: 'b' } }, { schema: 'iglu:com.acme/ab-test/jsonschema/1-0-1', data: { variant: 'c', since: 3 } }])
// targetUrl must be a string: a schema violation.
track('bad_link_click', sp.buildSelfDescribingEvent({
  event: { schema: 'iglu:com.acme/link_click/jsonschema/1-0-0', data: { targetUrl: 42 } },
}))
track('transaction', sp.buildEcommerceTransaction({
  orderId: 'o-' + tag, total: 39.95, affiliation: 'web', tax: 3.5, shipping: 4.9, city: 'Berlin', state: 'BE', country: 'DE', currency: 'EUR',
}))
track('transaction_item', sp.buildEcommerceTransactionItem({
  orderId: 'o-' + tag, sku: 'sku-1', name: 'Red shoe', category: 'shoes', price: 17.5, quantity: 2, currency: 'EUR',
}))

tracker.flush().then(() => {
  if (failures.length > 0) {
    console.error('snowplow requests failed:', failures)
    process.exit(1)
  }
  console.log(JSON.stringify(ids))
})
