// Where an exchange's response goes: the client side of a ProxyExchange. HttpConnection is the real
// one; unit tests use a fake that records what was written and drains on demand.
#pragma once

#include "httprequestparser.h"

#include <QByteArray>
#include <QObject>

namespace keyrelay {

class ResponseSink : public QObject
{
    Q_OBJECT
public:
    using QObject::QObject;

    /// Bytes handed over that the client has not taken yet.
    virtual qint64 pendingOutput() const = 0;
    /// Body bytes handed over so far for the response in progress.
    virtual qint64 bodyBytesWritten() const = 0;

    /// Starts a response. @p contentLength -1: the length is unknown (chunked or close-delimited).
    virtual void writeHead(int status, const HeaderList &headers, qint64 contentLength = -1) = 0;
    virtual void writeBody(const QByteArray &data) = 0;
    /// Ends the response.
    virtual void finishResponse() = 0;
    /// Drops the connection in the middle of a response so the client sees an incomplete reply.
    virtual void abortResponse() = 0;
    /// A whole response in one call.
    virtual void sendResponse(int status, const HeaderList &headers, const QByteArray &body) = 0;

Q_SIGNALS:
    /// The client went away while a request was being handled.
    void clientGone();
    /// What was pending dropped below the low watermark (for back-pressure).
    void outputDrained();
};

} // namespace keyrelay
