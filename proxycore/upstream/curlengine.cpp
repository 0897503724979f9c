#include "curlengine.h"

#include <QHostAddress>
#include <QSocketNotifier>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <mutex>

namespace keyrelay {

namespace {

void initCurlOnce()
{
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

} // namespace

void applyProxy(UpstreamRequestSpec *spec, const QNetworkProxy &proxy)
{
    spec->proxy.clear();
    spec->proxyUser.clear();
    spec->proxyPassword.clear();
    QString scheme;
    switch (proxy.type()) {
    case QNetworkProxy::HttpProxy:
    case QNetworkProxy::HttpCachingProxy:
        scheme = QStringLiteral("http");
        break;
    case QNetworkProxy::Socks5Proxy:
        scheme = QStringLiteral("socks5h");
        break;
    default:
        return;
    }
    const QString host = proxy.hostName().contains(QLatin1Char(':'))
        ? QLatin1Char('[') + proxy.hostName() + QLatin1Char(']')
        : proxy.hostName();
    spec->proxy = QStringLiteral("%1://%2:%3").arg(scheme, host).arg(proxy.port());
    spec->proxyUser = proxy.user();
    spec->proxyPassword = proxy.password();
}

// ---------------------------------------------------------------------------------------------- engine

CurlEngine::CurlEngine(QObject *parent) : QObject(parent), m_timer(new QTimer(this))
{
    initCurlOnce();
    m_multi = curl_multi_init();
    curl_multi_setopt(m_multi, CURLMOPT_SOCKETFUNCTION, &CurlEngine::socketCallback);
    curl_multi_setopt(m_multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(m_multi, CURLMOPT_TIMERFUNCTION, &CurlEngine::timerCallback);
    curl_multi_setopt(m_multi, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(m_multi, CURLMOPT_PIPELINING, long(CURLPIPE_MULTIPLEX));
    m_timer->setSingleShot(true);
    connect(m_timer, &QTimer::timeout, this, [this] { drive(CURL_SOCKET_TIMEOUT, 0); });
}

CurlEngine::~CurlEngine()
{
    const auto transfers = m_transfers;
    for (UpstreamTransfer *transfer : transfers) {
        curl_multi_remove_handle(m_multi, transfer->m_easy);
        transfer->m_engine = nullptr;
    }
    m_transfers.clear();
    curl_multi_cleanup(m_multi);
    for (const Socket &socket : std::as_const(m_sockets)) {
        delete socket.read;
        delete socket.write;
    }
}

UpstreamCall *CurlEngine::startCall(const UpstreamRequestSpec &spec, QObject *parent)
{
    return start(spec, parent);
}

void CurlEngine::setMaxConnections(int connections)
{
    curl_multi_setopt(m_multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, long(qMax(1, connections)));
}

void CurlEngine::setMaxConnectionsPerHost(int connections)
{
    curl_multi_setopt(m_multi, CURLMOPT_MAX_HOST_CONNECTIONS, long(qMax(0, connections)));
}

void CurlEngine::setMaxStreamsPerConnection(int streams)
{
    curl_multi_setopt(m_multi, CURLMOPT_MAX_CONCURRENT_STREAMS, long(qMax(1, streams)));
}

UpstreamTransfer *CurlEngine::start(const UpstreamRequestSpec &spec, QObject *parent)
{
    auto *transfer = new UpstreamTransfer(this, spec, parent);
    QString error;
    if (!transfer->setUp(&error)) {
        transfer->m_result.curlCode = CURLE_FAILED_INIT;
        transfer->m_result.message = error;
        transfer->m_finished = true;
        m_pending.insert(transfer);
        scheduleDelivery();
        return transfer;
    }
    m_transfers.insert(transfer);
    curl_multi_add_handle(m_multi, transfer->m_easy); // arms the timer: the transfer starts from the loop
    return transfer;
}

int CurlEngine::socketCallback(CURL *, int fd, int what, void *engine, void *)
{
    static_cast<CurlEngine *>(engine)->watch(fd, what);
    return 0;
}

int CurlEngine::timerCallback(CURLM *, long timeoutMs, void *engine)
{
    auto *self = static_cast<CurlEngine *>(engine);
    if (timeoutMs < 0)
        self->m_timer->stop();
    else
        self->m_timer->start(int(qMin<long>(timeoutMs, 24L * 3600 * 1000)));
    return 0;
}

void CurlEngine::watch(int fd, int what)
{
    if (what == CURL_POLL_REMOVE) {
        const Socket socket = m_sockets.take(fd);
        for (QSocketNotifier *notifier : { socket.read, socket.write }) {
            if (notifier) {
                notifier->setEnabled(false);
                notifier->deleteLater(); // we may be inside its activated() signal
            }
        }
        return;
    }
    Socket &socket = m_sockets[fd];
    if (!socket.read) {
        socket.read = new QSocketNotifier(fd, QSocketNotifier::Read, this);
        socket.write = new QSocketNotifier(fd, QSocketNotifier::Write, this);
        connect(socket.read, &QSocketNotifier::activated, this, [this, fd] { drive(fd, CURL_CSELECT_IN); });
        connect(socket.write, &QSocketNotifier::activated, this, [this, fd] { drive(fd, CURL_CSELECT_OUT); });
    }
    socket.read->setEnabled(what == CURL_POLL_IN || what == CURL_POLL_INOUT);
    socket.write->setEnabled(what == CURL_POLL_OUT || what == CURL_POLL_INOUT);
}

void CurlEngine::drive(int fd, int eventMask)
{
    int running = 0;
    curl_multi_socket_action(m_multi, fd, eventMask, &running);
    readFinished();
    deliverPending();
}

void CurlEngine::readFinished()
{
    int left = 0;
    while (CURLMsg *message = curl_multi_info_read(m_multi, &left)) {
        if (message->msg != CURLMSG_DONE)
            continue;
        UpstreamTransfer *transfer = nullptr;
        curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &transfer);
        const CURLcode code = message->data.result;
        if (transfer)
            transfer->complete(int(code)); // removes the handle: `message` is not used after this
    }
}

void CurlEngine::scheduleDelivery()
{
    if (m_deliveryScheduled)
        return;
    m_deliveryScheduled = true;
    QMetaObject::invokeMethod(this, &CurlEngine::deliverPending, Qt::QueuedConnection);
}

void CurlEngine::deliverPending()
{
    m_deliveryScheduled = false;
    // A slot may end, abort or delete any transfer (and start new ones): work on guarded copies.
    QList<QPointer<UpstreamTransfer>> pending;
    pending.reserve(m_pending.size());
    for (UpstreamTransfer *transfer : std::as_const(m_pending))
        pending.append(transfer);
    m_pending.clear();
    for (const QPointer<UpstreamTransfer> &transfer : std::as_const(pending)) {
        if (transfer)
            transfer->deliver();
    }
}

void CurlEngine::remove(UpstreamTransfer *transfer)
{
    if (m_transfers.remove(transfer))
        curl_multi_remove_handle(m_multi, transfer->m_easy);
    m_pending.remove(transfer);
}

void CurlEngine::resume(UpstreamTransfer *transfer)
{
    transfer->m_resumeQueued = false;
    if (!m_transfers.contains(transfer) || !transfer->m_paused)
        return;
    transfer->m_paused = false;
    // May call the write callback at once with the chunk curl kept back (and pause again).
    curl_easy_pause(transfer->m_easy, CURLPAUSE_CONT);
    drive(CURL_SOCKET_TIMEOUT, 0);
}

// -------------------------------------------------------------------------------------------- transfer

UpstreamTransfer::UpstreamTransfer(CurlEngine *engine, const UpstreamRequestSpec &spec, QObject *parent)
    : UpstreamCall(parent), m_engine(engine), m_spec(spec), m_head(spec.maxHeaderBytes)
{
}

UpstreamTransfer::~UpstreamTransfer()
{
    if (m_engine)
        m_engine->remove(this);
    if (m_easy)
        curl_easy_cleanup(m_easy);
    curl_slist_free_all(m_headerList);
}

bool UpstreamTransfer::setUp(QString *error)
{
    m_easy = curl_easy_init();
    if (!m_easy) {
        *error = QStringLiteral("libcurl could not create a transfer");
        return false;
    }
    CURL *easy = m_easy;
    const QByteArray url = m_spec.url.toEncoded();
    curl_easy_setopt(easy, CURLOPT_URL, url.constData()); // curl copies strings
    curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, m_errorBuffer);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &UpstreamTransfer::headerCallback);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &UpstreamTransfer::writeCallback);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L); // redirects go to the client
    curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L); // bytes and Content-Encoding pass untouched
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, long(m_spec.connectTimeoutMs));
    if (m_spec.totalTimeoutMs > 0)
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, long(m_spec.totalTimeoutMs));
    // HTTP/2 only where ALPN can offer it (https). Waiting to share a connection (PIPEWAIT) is only for
    // those too: for plain http:// it would hold further requests of a burst until the first one's
    // connection is known not to multiplex.
    const bool mayMultiplex = m_spec.http2 && m_spec.url.scheme() == QLatin1String("https");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION,
                     mayMultiplex ? long(CURL_HTTP_VERSION_2TLS) : long(CURL_HTTP_VERSION_1_1));
    if (mayMultiplex)
        curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L); // share an HTTP/2 connection rather than open more
    // No proxy unless one is configured: curl would otherwise read http_proxy & co from the environment.
    const QByteArray proxy = m_spec.proxy.toUtf8();
    curl_easy_setopt(easy, CURLOPT_PROXY, proxy.constData());
    if (!m_spec.proxyUser.isEmpty()) {
        curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME, m_spec.proxyUser.toUtf8().constData());
        curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD, m_spec.proxyPassword.toUtf8().constData());
    }
    curl_easy_setopt(easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    if (m_spec.url.scheme() == QLatin1String("https")) {
        // Also to add the application's extra CAs to the store the connection verifies with.
        // To say what is wrong with a certificate that fails verification (curl shows none then).
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &UpstreamTransfer::sslContextCallback);
        curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, this);
    }
    // The CA bundle only (Debian's /etc/ssl/certs/ca-certificates.crt, kept by update-ca-certificates), not
    // also the hashed directory: libcurl 7.88 caches a parsed bundle for the multi handle but parses it
    // again for every connection when a CA directory is set (~45 ms of CPU per TLS connection here).
    curl_easy_setopt(easy, CURLOPT_CAPATH, nullptr);
    if (!m_spec.extraCaCertificatesPem.isEmpty())
        curl_easy_setopt(easy, CURLOPT_CA_CACHE_TIMEOUT, 0L); // the extras go into a store of its own
    if (!m_spec.caCertificatesPem.isEmpty()) {
        curl_blob blob { m_spec.caCertificatesPem.data(), size_t(m_spec.caCertificatesPem.size()),
                         CURL_BLOB_COPY };
        curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &blob);
    }

    // The method and body. curl would add "Content-Type: application/x-www-form-urlencoded" to a body
    // without one, "Accept: */*" and "Expect: 100-continue": none of them is the client's.
    const QByteArray method = m_spec.method;
    if (method == "HEAD") {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else if (method == "GET" && m_spec.body.isEmpty()) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(m_spec.body.size()));
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, m_spec.body.constData()); // lives as long as m_spec
        if (method != "POST")
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.constData());
    }
    bool hasAccept = false;
    bool hasContentType = false;
    for (const auto &header : std::as_const(m_spec.headers)) {
        const QByteArray name = header.first.toLower();
        hasAccept = hasAccept || name == "accept";
        hasContentType = hasContentType || name == "content-type";
        // "Name;" is curl's way to send a header with an empty value ("Name:" would remove it).
        const QByteArray line = header.second.isEmpty() ? QByteArray(header.first + ';')
                                                        : QByteArray(header.first + ": " + header.second);
        m_headerList = curl_slist_append(m_headerList, line.constData());
    }
    if (!hasAccept)
        m_headerList = curl_slist_append(m_headerList, "Accept:");
    if (!hasContentType)
        m_headerList = curl_slist_append(m_headerList, "Content-Type:");
    m_headerList = curl_slist_append(m_headerList, "Expect:");
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, m_headerList);
    return true;
}

int UpstreamTransfer::sslContextCallback(CURL *, void *sslContext, void *transfer)
{
    // curl makes a context per connection, for the transfer that opens it: that transfer hears about the
    // certificate. The verification itself stays OpenSSL's (verifyCallback returns its verdict).
    auto *context = static_cast<SSL_CTX *>(sslContext);
    const QByteArray &extra = static_cast<UpstreamTransfer *>(transfer)->m_spec.extraCaCertificatesPem;
    if (!extra.isEmpty()) {
        X509_STORE *store = SSL_CTX_get_cert_store(context);
        BIO *bio = BIO_new_mem_buf(extra.constData(), int(extra.size()));
        while (X509 *certificate = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
            X509_STORE_add_cert(store, certificate); // takes its own reference
            X509_free(certificate);
        }
        ERR_clear_error(); // the end of the PEM text reads as an error
        BIO_free(bio);
    }
    // The name is checked in the handshake itself (curl checks it only afterwards): a certificate for
    // another host ends the handshake, as an untrusted one does, with X509_V_ERR_HOSTNAME_MISMATCH.
    const QString host = static_cast<UpstreamTransfer *>(transfer)->m_spec.url.host();
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(context);
    if (QHostAddress(host).isNull())
        X509_VERIFY_PARAM_set1_host(param, host.toUtf8().constData(), 0);
    else
        X509_VERIFY_PARAM_set1_ip_asc(param, host.toLatin1().constData());
    SSL_CTX_set_app_data(context, transfer);
    SSL_CTX_set_verify(context, SSL_CTX_get_verify_mode(context), &UpstreamTransfer::verifyCallback);
    return CURLE_OK;
}

int UpstreamTransfer::verifyCallback(int preverifyOk, X509_STORE_CTX *store)
{
    if (X509_STORE_CTX_get_error_depth(store) != 0)
        return preverifyOk;
    auto *ssl = static_cast<SSL *>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto *transfer
        = ssl ? static_cast<UpstreamTransfer *>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl))) : nullptr;
    X509 *certificate = X509_STORE_CTX_get_current_cert(store);
    if (!transfer || !certificate)
        return preverifyOk;
    struct tm expiry
    {
    };
    if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &expiry) == 1) {
        transfer->m_result.certificateExpiry
            = QDateTime(QDate(expiry.tm_year + 1900, expiry.tm_mon + 1, expiry.tm_mday),
                        QTime(expiry.tm_hour, expiry.tm_min, expiry.tm_sec), Qt::UTC);
    }
    QStringList names;
    auto *alternatives
        = static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; alternatives && i < sk_GENERAL_NAME_num(alternatives); ++i) {
        const GENERAL_NAME *name = sk_GENERAL_NAME_value(alternatives, i);
        if (name->type == GEN_DNS) {
            names << QString::fromLatin1(
                reinterpret_cast<const char *>(ASN1_STRING_get0_data(name->d.dNSName)),
                ASN1_STRING_length(name->d.dNSName));
        } else if (name->type == GEN_IPADD && ASN1_STRING_length(name->d.iPAddress) == 4) {
            const unsigned char *ip = ASN1_STRING_get0_data(name->d.iPAddress);
            names << QHostAddress(quint32(ip[0]) << 24 | quint32(ip[1]) << 16 | quint32(ip[2]) << 8 | ip[3])
                         .toString();
        }
    }
    GENERAL_NAMES_free(alternatives);
    if (names.isEmpty()) {
        char commonName[256] = {};
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, commonName,
                                      int(sizeof(commonName)))
            > 0)
            names << QString::fromUtf8(commonName);
    }
    transfer->m_result.certificateNames = names;
    return preverifyOk;
}

size_t UpstreamTransfer::headerCallback(char *data, size_t size, size_t count, void *transfer)
{
    return static_cast<UpstreamTransfer *>(transfer)->onHeaderLine(data, size * count);
}

size_t UpstreamTransfer::writeCallback(char *data, size_t size, size_t count, void *transfer)
{
    return static_cast<UpstreamTransfer *>(transfer)->onData(data, size * count);
}

size_t UpstreamTransfer::onHeaderLine(const char *data, size_t length)
{
    switch (m_head.feedLine(data, length)) {
    case ResponseHeadReader::Progress::TooLarge:
        m_result.headersTooLarge = true;
        return 0; // curl ends the transfer with CURLE_WRITE_ERROR
    case ResponseHeadReader::Progress::Complete:
        if (m_engine)
            m_engine->m_pending.insert(this);
        break;
    case ResponseHeadReader::Progress::Reading:
        break;
    }
    return length;
}

size_t UpstreamTransfer::onData(const char *data, size_t length)
{
    if (m_buffered >= m_spec.bufferLimit) {
        m_paused = true; // curl keeps this chunk and hands it over again after curl_easy_pause(CONT)
        return CURL_WRITEFUNC_PAUSE;
    }
    // One piece per callback (at most CURLOPT_BUFFERSIZE, 16 KiB): no reallocation of a growing buffer,
    // and a read that takes whole pieces copies nothing.
    m_pieces.emplace_back(data, qsizetype(length));
    m_buffered += qint64(length);
    m_received += qint64(length);
    m_dataPending = true;
    if (m_engine)
        m_engine->m_pending.insert(this);
    return length;
}

QByteArray UpstreamTransfer::read(qint64 maxBytes)
{
    qint64 left = maxBytes < 0 ? m_buffered : qMin<qint64>(maxBytes, m_buffered);
    QByteArray out;
    while (left > 0 && !m_pieces.empty()) {
        QByteArray &piece = m_pieces.front();
        if (piece.size() <= left) {
            left -= piece.size();
            if (out.isEmpty())
                out = std::move(piece);
            else
                out += piece;
            m_pieces.pop_front();
        } else {
            out += piece.left(qsizetype(left));
            piece.remove(0, qsizetype(left));
            left = 0;
        }
    }
    m_buffered -= out.size();
    if (m_paused && !m_resumeQueued && m_engine && m_buffered <= m_spec.bufferLimit / 2) {
        m_resumeQueued = true;
        QPointer<UpstreamTransfer> self(this);
        QPointer<CurlEngine> engine(m_engine);
        QMetaObject::invokeMethod(
            engine,
            [engine, self] {
                if (engine && self)
                    engine->resume(self);
            },
            Qt::QueuedConnection);
    }
    return out;
}

void UpstreamTransfer::complete(int curlCode)
{
    if (m_finished)
        return;
    m_finished = true;
    m_result.curlCode = curlCode;
    if (curlCode != CURLE_OK) {
        m_result.message = m_errorBuffer[0] ? QString::fromUtf8(m_errorBuffer)
                                            : QString::fromUtf8(curl_easy_strerror(CURLcode(curlCode)));
    }
    curl_easy_getinfo(m_easy, CURLINFO_OS_ERRNO, &m_result.osErrno);
    curl_easy_getinfo(m_easy, CURLINFO_SSL_VERIFYRESULT, &m_result.sslVerifyResult);
    curl_easy_getinfo(m_easy, CURLINFO_HTTP_CONNECTCODE, &m_result.proxyConnectCode);
    if (m_engine) {
        m_engine->remove(this);
        m_engine->m_pending.insert(this);
    }
}

void UpstreamTransfer::abort()
{
    if (m_finished)
        return;
    m_result.aborted = true;
    complete(CURLE_ABORTED_BY_CALLBACK);
    m_result.message = QStringLiteral("aborted");
    if (m_engine)
        m_engine->scheduleDelivery(); // finished() follows from the event loop, not from inside abort()
}

void UpstreamTransfer::deliver()
{
    const QPointer<UpstreamTransfer> self(this);
    if (m_head.isComplete() && !m_headersDelivered) {
        m_headersDelivered = true;
        Q_EMIT headersReceived();
        if (!self)
            return;
    }
    if (m_dataPending && m_headersDelivered) {
        m_dataPending = false;
        Q_EMIT dataAvailable();
        if (!self)
            return;
    }
    if (m_finished && !m_finishDelivered) {
        m_finishDelivered = true;
        Q_EMIT finished();
    }
}

} // namespace keyrelay
