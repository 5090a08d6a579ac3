// Sends a track, an identify and a page through the real @segment/analytics-node
// client to the collector named by the first argument, with the write key in
// the second. Exits non-zero if the client reports an error.
const { Analytics } = require('@segment/analytics-node')

const [host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 3, maxRetries: 3 })
let failed = false
analytics.on('error', (err) => { console.error('segment error:', err); failed = true })

analytics.track({
  userId: 'u-42',
  event: 'Order Completed',
  messageId: 'seg-track-1',
  properties: { revenue: 39.95, currency: 'EUR', items: 2 },
  context: { ip: '198.51.100.23', userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36' },
})
analytics.identify({ userId: 'u-42', messageId: 'seg-identify-1', traits: { plan: 'pro', email: 'a@example.com' } })
analytics.page({
  anonymousId: 'anon-7',
  messageId: 'seg-page-1',
  name: 'Pricing',
  properties: { url: 'https://shop.example/pricing?utm_source=newsletter', title: 'Pricing', referrer: 'https://www.google.com/' },
})
analytics.closeAndFlush({ timeout: 10000 }).then(() => process.exit(failed ? 1 : 0))
