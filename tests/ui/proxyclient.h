// Sends a request through the proxy under test and waits for the answer (event loop keeps running).
#pragma once

#include <QNetworkAccessManager>
#include <QNetworkProxy>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QTest>

#include <memory>

struct ProxyAnswer
{
    int status = 0;
    QByteArray body;
    QNetworkReply::NetworkError error = QNetworkReply::NoError;
};

inline ProxyAnswer postThrough(QNetworkAccessManager *manager, const QString &endpoint,
                               const QByteArray &body,
                               const QString &path = QStringLiteral("/v1/chat/completions"),
                               const QList<QPair<QByteArray, QByteArray>> &extraHeaders = {})
{
    manager->setProxy(QNetworkProxy::NoProxy);
    QNetworkRequest request(QUrl(endpoint + path));
    request.setHeader(QNetworkRequest::ContentTypeHeader, QStringLiteral("application/json"));
    request.setRawHeader("Authorization", "Bearer client-placeholder");
    for (const auto &header : extraHeaders)
        request.setRawHeader(header.first, header.second);
    std::unique_ptr<QNetworkReply> reply(manager->post(request, body));
    if (!QTest::qWaitFor([&] { return reply->isFinished(); }, 15000))
        reply->abort();
    ProxyAnswer answer;
    answer.status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    answer.body = reply->readAll();
    answer.error = reply->error();
    return answer;
}

inline QByteArray chatBody()
{
    return R"({"model":"gpt-test","messages":[{"role":"user","content":"hello"}]})";
}

/// The mock upstream's answer to a good key: a chat completion for gpt-test, 5 + 2 = 7 tokens.
inline QByteArray chatCompletion()
{
    return R"({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";
}
