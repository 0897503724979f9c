// The upstream leg of an exchange, as the exchange sees it: a request spec, a call in flight with the
// signal shape of the design card (headers, data available, finished with a result), and the client
// that starts calls. CurlEngine / UpstreamTransfer are the real ones (libcurl); unit tests use fakes.
#pragma once

#include "httprequestparser.h"

#include <QByteArray>
#include <QDateTime>
#include <QNetworkProxy>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QUrl>

namespace keyrelay {

/// What one upstream request is: where, what, and how to reach it.
struct UpstreamRequestSpec
{
    QByteArray method = "GET";
    QUrl url;
    HeaderList headers; ///< sent in this order and spelling; Host and Content-Length are curl's
    QByteArray body; ///< sent as is (replayable: a retry sends the same bytes)
    bool http2 = true; ///< HTTP/2 for https:// upstreams that offer it (ALPN); HTTP/1.1 otherwise
    int connectTimeoutMs = 15000;
    QString proxy; ///< "" = none (the environment's *_proxy are ignored), else "http://host:port", …
    QString proxyUser;
    QString proxyPassword;
    QByteArray caCertificatesPem; ///< trusted CAs instead of the system's (tests); empty = the system's
    /// CAs trusted in addition to the system's (PEM): those an application added to Qt's default TLS
    /// configuration (QSslConfiguration::addCaCertificates), see ProxyServer.
    QByteArray extraCaCertificatesPem;
    int totalTimeoutMs = 0; ///< the whole transfer, for short checks (0 = no limit: streams last)
    qint64 maxHeaderBytes = 256 * 1024; ///< response headers in total; past it the transfer fails
    qint64 bufferLimit = 256 * 1024; ///< response bytes held unread before the upstream is paused
};

/// Sets @p spec's proxy from Qt's description of one (HTTP, or SOCKS5 with the name resolved by the proxy).
void applyProxy(UpstreamRequestSpec *spec, const QNetworkProxy &proxy);

/// How an upstream request ended.
struct UpstreamResult
{
    int curlCode = 0; ///< CURLcode; 0 = the whole response arrived
    QString message; ///< curl's detailed error text, empty on success
    long osErrno = 0; ///< CURLINFO_OS_ERRNO
    long sslVerifyResult = 0; ///< CURLINFO_SSL_VERIFYRESULT (an X509 verify code)
    long proxyConnectCode = 0; ///< CURLINFO_HTTP_CONNECTCODE: a proxy's answer to CONNECT (407...)
    bool headersTooLarge = false; ///< the response headers passed UpstreamRequestSpec::maxHeaderBytes
    /// The upstream's own TLS certificate as its handshake showed it (also when verification failed):
    /// when it expires, and the names it is for (DNS and IP subject alternative names, else the CN).
    QDateTime certificateExpiry;
    QStringList certificateNames;
    bool aborted = false; ///< abort() was called
    bool ok() const { return curlCode == 0 && !headersTooLarge && !aborted; }
};

/// One upstream request in flight. Signals come from the event loop, never from inside a call into it.
class UpstreamCall : public QObject
{
    Q_OBJECT
public:
    using QObject::QObject;

    /// The final response's status (1xx interim answers are skipped), 0 before headersReceived().
    virtual int status() const = 0;
    /// The final response's headers, in order, names as sent.
    virtual HeaderList headers() const = 0;
    QByteArray header(const QByteArray &name) const { return headerValue(headers(), name); }
    /// The final answer's HTTP version ("1.1", "2"); empty when unknown.
    virtual QByteArray httpVersion() const { return {}; }
    /// Body bytes received and not read yet.
    virtual qint64 bytesAvailable() const = 0;
    /// Takes up to @p maxBytes of the body (all with -1); reading makes room for more (back-pressure).
    virtual QByteArray read(qint64 maxBytes = -1) = 0;
    /// Whether the upstream is held back because nobody read (back-pressure).
    virtual bool isPaused() const = 0;
    virtual bool isFinished() const = 0;
    virtual UpstreamResult result() const = 0;
    /// Ends the call now; finished() follows from the event loop unless it already finished.
    virtual void abort() = 0;

Q_SIGNALS:
    void headersReceived();
    void dataAvailable();
    void finished();
};

/// Starts upstream calls.
class UpstreamClient
{
public:
    virtual ~UpstreamClient() = default;
    /// Starts @p spec; the call is owned by @p parent (or by the caller when null) and reports through its
    /// signals, never from inside this function.
    virtual UpstreamCall *startCall(const UpstreamRequestSpec &spec, QObject *parent = nullptr) = 0;
};

} // namespace keyrelay
