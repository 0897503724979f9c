#include "openaierror.h"

#include "httpconnection.h"

#include <QJsonDocument>
#include <QJsonObject>

namespace keyrelay {

QByteArray openAiErrorBody(const QString &message, const QString &type, const QString &code)
{
    QJsonObject error;
    error.insert(QLatin1String("message"), message);
    error.insert(QLatin1String("type"), type);
    error.insert(QLatin1String("code"), code.isEmpty() ? QJsonValue() : QJsonValue(code));
    error.insert(QLatin1String("param"), QJsonValue());
    QJsonObject root;
    root.insert(QLatin1String("error"), error);
    return QJsonDocument(root).toJson(QJsonDocument::Compact);
}

OpenAiError parseOpenAiError(const QByteArray &body)
{
    const QJsonValue error = QJsonDocument::fromJson(body).object().value(QLatin1String("error"));
    if (error.isString())
        return { error.toString(), QString(), QString() };
    const QJsonObject object = error.toObject();
    return { object.value(QLatin1String("message")).toString(),
             object.value(QLatin1String("type")).toString(), object.value(QLatin1String("code")).toString() };
}

QString upstreamErrorMessage(const QByteArray &body, int status)
{
    QString message = parseOpenAiError(body).message;
    if (message.isEmpty())
        message = QStringLiteral("upstream answered %1 %2")
                      .arg(status)
                      .arg(QString::fromLatin1(HttpConnection::reasonPhrase(status)));
    return message.left(500);
}

} // namespace keyrelay
