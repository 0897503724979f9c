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

namespace {
/// The "error" member of @p body; for an error typed as an event stream, of its first "data:" event that
/// has one.
QJsonValue errorMember(const QByteArray &body)
{
    QJsonParseError parseError {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &parseError);
    const QByteArray trimmed = body.trimmed();
    const bool stream = trimmed.startsWith("data:") || trimmed.startsWith("event:");
    if (parseError.error == QJsonParseError::NoError || !stream) {
        return document.object().value(QLatin1String("error"));
    }
    const QList<QByteArray> lines = body.split('\n');
    for (const QByteArray &line : lines) {
        if (!line.startsWith("data:"))
            continue;
        const QJsonValue error
            = QJsonDocument::fromJson(line.mid(5).trimmed()).object().value(QLatin1String("error"));
        if (!error.isUndefined() && !error.isNull())
            return error;
    }
    return {};
}
} // namespace

OpenAiError parseOpenAiError(const QByteArray &body)
{
    const QJsonValue error = errorMember(body);
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
