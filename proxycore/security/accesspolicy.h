// Who may use the proxy: browser origins (CORS), the optional client token, and the Host header.
// Every such decision is made here, in one place, from the ProxyConfig.
#pragma once

#include "httpconnection.h"
#include "proxyconfig.h"

#include <QByteArray>
#include <QString>
#include <QStringList>

namespace keyrelay {

class AccessPolicy
{
public:
    enum class OriginVerdict {
        NoOrigin, ///< not a browser request (SDKs, curl, editors): CORS does not apply
        Allowed, ///< a browser origin the user trusts: echo it
        Blocked, ///< any other website: 403, nothing forwarded
        Ambiguous, ///< more than one Origin header: 403
        CrossSiteWithoutOrigin, ///< no Origin, but the browser says "Sec-Fetch-Site: cross-site": 403
    };

    explicit AccessPolicy(const ProxyConfig &config);

    /// The decision for a request: its Origin header(s), and without one its Sec-Fetch-Site.
    OriginVerdict checkRequest(const HttpRequest &request) const;
    /// The decision for one Origin header value (empty = no Origin header).
    OriginVerdict checkOrigin(const QByteArray &origin) const;
    /// Whether @p origin is trusted without any setting: loopback pages, browser extensions, desktop apps.
    static bool isTrustedByDefault(const QByteArray &origin);

    /// Headers for a response to an allowed origin: the origin echoed, "Vary: Origin", exposed headers.
    /// Empty for requests without an Origin.
    static HeaderList responseCorsHeaders(const QByteArray &origin);
    /// The answer to an allowed preflight (OPTIONS with Origin).
    static HeaderList preflightHeaders(const HttpRequest &request);

    bool requiresToken() const { return !m_token.isEmpty(); }
    /// True when no token is configured, or the request carries it (Authorization: Bearer, x-api-key
    /// or api-key), compared in constant time.
    bool tokenAccepted(const HttpRequest &request) const;
    /// Whether a credential the client sent is the access token (it must never go upstream).
    bool isToken(const QByteArray &credential) const;

    /// The Host header check against DNS rebinding: loopback names always, plus allowedHosts.
    /// @p remoteListener: the listener is not on loopback (then any Host is accepted, the token guards).
    bool hostAllowed(const QByteArray &hostHeader, bool remoteListener) const;

    /// Validation helpers, shared by the settings registry, the settings page and the headless flags.
    /// An origin entry: "scheme://host[:port]", "https://*.example.org", or "null".
    static bool isValidOriginEntry(const QString &entry);
    /// A host name entry for allowedHosts: a DNS name or an IP address, optionally with ":port".
    static bool isValidHostEntry(const QString &entry);
    /// A fresh random client token ("krt-" + 40 base64url characters).
    static QString generateToken();

    /// Constant-time comparison of two byte strings (time depends only on their lengths).
    static bool constantTimeEquals(const QByteArray &a, const QByteArray &b);

private:
    bool matchesAllowList(const QByteArray &lowerOrigin) const;

    QList<QByteArray> m_allowedOrigins; ///< lower case
    bool m_allowAnyWebsite = false;
    QByteArray m_token;
    QList<QByteArray> m_allowedHosts; ///< lower case, without port
};

} // namespace keyrelay
