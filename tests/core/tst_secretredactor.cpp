// SecretRedactor: no whole key in any text that leaves the proxy core.
#include "keypool.h"
#include "logging.h"
#include "secretmatcher.h"
#include "secretredactor.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

using namespace keyrelay;

namespace {
const QString KeyA = QStringLiteral("sk-proj-AAAAbbbbCCCCddddEEEEffff0000111122223333");
const QString KeyB = QStringLiteral("cstm9f8e7d6c5b4aQzXwVuTs1234"); // not sk- shaped
const QString Token = QStringLiteral("krt-clienttoken-abcdefghijklmnop");

/// True when any 5 consecutive characters of @p secret appear in @p text.
bool leaksPartOf(const QString &text, const QString &secret)
{
    // The mask shows the first 3 and last 4 characters: look for longer runs from the middle.
    for (qsizetype i = 1; i + 5 < secret.size() - 1; ++i) {
        if (text.contains(secret.mid(i, 5)))
            return true;
    }
    return false;
}
} // namespace

class tst_SecretRedactor : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void init();
    void configuredKeysAnywhere_data();
    void configuredKeysAnywhere();
    void keysAddedLaterAreMasked();
    void extraSecrets();
    void patterns_data();
    void patterns();
    void leavesOrdinaryTextAlone();
    void bodiesMaskOnlyConfiguredSecrets();
    void encodedSpellingsMasked_data();
    void encodedSpellingsMasked();
    void maskedJsonStaysJson();
    void matcherFindsTheLongestAndMergesOverlaps();
    void manyKeysAnySpelling();
    void headerValuesMaskedInAscii();
    void logMessagesFromInsideThePoolAreRedactedWithoutDeadlock();

private:
    KeyPool m_pool;
};

void tst_SecretRedactor::init()
{
    m_pool.setKeys({ { KeyA, QString(), true }, { KeyB, QStringLiteral("second"), true } });
}

void tst_SecretRedactor::configuredKeysAnywhere_data()
{
    QTest::addColumn<QString>("text");
    QTest::newRow("plain") << QStringLiteral("Incorrect API key provided: %1.").arg(KeyB);
    QTest::newRow("json") << QStringLiteral("{\"error\":{\"message\":\"bad key '%1'\"}}").arg(KeyA);
    QTest::newRow("twice") << KeyB + QLatin1Char(' ') + KeyB;
    QTest::newRow("glued") << QStringLiteral("x") + KeyB + QStringLiteral("y");
    QTest::newRow("query") << QStringLiteral("/v1/models?key=%1&x=1").arg(KeyB);
}

void tst_SecretRedactor::configuredKeysAnywhere()
{
    QFETCH(QString, text);
    const SecretRedactor redactor(&m_pool);
    const QString out = redactor.redact(text);
    QVERIFY2(!out.contains(KeyA) && !out.contains(KeyB), qPrintable(out));
    QVERIFY2(!leaksPartOf(out, KeyA) && !leaksPartOf(out, KeyB), qPrintable(out));
}

void tst_SecretRedactor::keysAddedLaterAreMasked()
{
    const SecretRedactor redactor(&m_pool);
    const QString later = QStringLiteral("provider-key-added-later-123456");
    QVERIFY(redactor.redact(later).contains(later));
    m_pool.setKeys({ { later, QString(), true } });
    QVERIFY(!redactor.redact(later).contains(later));
}

void tst_SecretRedactor::extraSecrets()
{
    SecretRedactor redactor(&m_pool);
    redactor.setExtraSecrets({ Token, QStringLiteral("proxy-password-1"), QStringLiteral("abc") });
    QVERIFY(!redactor.redact(QStringLiteral("token %1").arg(Token)).contains(Token));
    QVERIFY(
        !redactor.redact(QStringLiteral("pw proxy-password-1")).contains(QStringLiteral("proxy-password-1")));
    // Too short to be a secret: masking it would mangle ordinary words.
    QCOMPARE(redactor.redact(QStringLiteral("abc")), QStringLiteral("abc"));
}

void tst_SecretRedactor::patterns_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("secret");
    const QString unknown = QStringLiteral("unknownsecretvalue12345");
    QTest::newRow("bearer") << QStringLiteral("Authorization: Bearer %1").arg(unknown) << unknown;
    QTest::newRow("bearer alone") << QStringLiteral("sent bearer %1 upstream").arg(unknown) << unknown;
    QTest::newRow("api-key header") << QStringLiteral("api-key: %1").arg(unknown) << unknown;
    QTest::newRow("x-api-key header") << QStringLiteral("X-Api-Key=%1").arg(unknown) << unknown;
    QTest::newRow("query key") << QStringLiteral("/v1/models?key=%1").arg(unknown) << unknown;
    QTest::newRow("query api_key") << QStringLiteral("/x?a=1&api_key=%1&b=2").arg(unknown) << unknown;
    QTest::newRow("sk shape") << QStringLiteral("key sk-abcdefghijklmnopqrstuvwxyz012345 bad")
                              << QStringLiteral("sk-abcdefghijklmnopqrstuvwxyz012345");
    QTest::newRow("sk-ant shape") << QStringLiteral("sk-ant-api03-abcdefghijklmnopqrstuvwxyz")
                                  << QStringLiteral("sk-ant-api03-abcdefghijklmnopqrstuvwxyz");
    QTest::newRow("google shape") << QStringLiteral("AIzaSyA1234567890abcdefghijklmnopqrs")
                                  << QStringLiteral("AIzaSyA1234567890abcdefghijklmnopqrs");
}

void tst_SecretRedactor::patterns()
{
    QFETCH(QString, text);
    QFETCH(QString, secret);
    const QString out = SecretRedactor().redact(text);
    QVERIFY2(!out.contains(secret), qPrintable(out));
    QVERIFY2(!leaksPartOf(out, secret), qPrintable(out));
}

void tst_SecretRedactor::leavesOrdinaryTextAlone()
{
    const SecretRedactor redactor(&m_pool);
    const QStringList texts { QStringLiteral("POST /v1/chat/completions model=gpt-4o status=200"),
                              QStringLiteral("upstream answered 429 Too Many Requests"),
                              QStringLiteral("the task-list is long"), QStringLiteral("/v1/models?limit=5") };
    for (const QString &text : texts)
        QCOMPARE(redactor.redact(text), text);
}

void tst_SecretRedactor::bodiesMaskOnlyConfiguredSecrets()
{
    const SecretRedactor redactor(&m_pool);
    const QByteArray body = "{\"error\":{\"message\":\"key " + KeyB.toUtf8()
        + " invalid\",\"note\":\"sk-abcdefghijklmnopqrstuvwxyz is an example\"}}";
    QVERIFY(redactor.containsConfiguredSecret(body));
    const QByteArray masked = redactor.maskConfiguredSecrets(body);
    QVERIFY(!masked.contains(KeyB.toUtf8()));
    QVERIFY(!redactor.containsConfiguredSecret(masked));
    // Everything else byte for byte (an example key in the text is not one of ours).
    QVERIFY(masked.contains("sk-abcdefghijklmnopqrstuvwxyz is an example"));
    QVERIFY(masked.startsWith("{\"error\":{\"message\":\"key "));
    QCOMPARE(redactor.maskConfiguredSecrets("no secrets here"), QByteArray("no secrets here"));
}

void tst_SecretRedactor::encodedSpellingsMasked_data()
{
    QTest::addColumn<QByteArray>("text");
    const QByteArray key = KeyB.toUtf8();
    QByteArray allEscaped;
    for (const char c : key)
        allEscaped
            += "\\u00" + QByteArray::number(uint(static_cast<unsigned char>(c)), 16).rightJustified(2, '0');
    QTest::newRow("exact") << key;
    QTest::newRow("JSON \\u first letter") << "\\u0063" + key.mid(1);
    QTest::newRow("JSON \\u every letter") << allEscaped;
    QTest::newRow("JSON \\u upper-case hex") << allEscaped.toUpper().replace("\\U", "\\u");
    QTest::newRow("percent-encoded letters") << "%63%73%74%6d" + key.mid(4);
    QTest::newRow("percent, lower-case hex") << "%63%73%74%6D" + key.mid(4);
    QTest::newRow("percent twice") << "%2563" + key.mid(1);
    QTest::newRow("percent inside JSON") << "\\u002563" + key.mid(1);
    QTest::newRow("JSON escape inside percent") << "%5Cu0063" + key.mid(1);
    QTest::newRow("in a sentence") << "bad key: \"\\u0063" + key.mid(1) + "\", try again";
}

void tst_SecretRedactor::encodedSpellingsMasked()
{
    QFETCH(QByteArray, text);
    const SecretRedactor redactor(&m_pool);
    const QByteArray masked = redactor.maskConfiguredSecrets(text);
    QVERIFY(redactor.containsConfiguredSecret(text));
    QVERIFY2(!redactor.containsConfiguredSecret(masked), masked.constData());
    // No layer of decoding brings it back.
    QByteArray decoded = masked;
    for (int layer = 0; layer < 3; ++layer) {
        decoded = SecretMatcher::decodeOnce(decoded);
        QVERIFY2(!leaksPartOf(QString::fromUtf8(decoded), KeyB), decoded.constData());
    }
    // The log path too.
    QVERIFY(!leaksPartOf(redactor.redact(QString::fromUtf8(text)), KeyB));
}

void tst_SecretRedactor::maskedJsonStaysJson()
{
    const SecretRedactor redactor(&m_pool);
    const QByteArray body = "{\"error\":{\"message\":\"key \\u0073"
        + KeyA.toUtf8().mid(1).replace("-", "\\u002d") + " is wrong\",\"code\":\"invalid_api_key\"}}";
    QVERIFY(QJsonDocument::fromJson(body).isObject());
    const QByteArray masked = redactor.maskConfiguredSecrets(body);
    QJsonParseError error {};
    const QJsonDocument document = QJsonDocument::fromJson(masked, &error);
    QVERIFY2(error.error == QJsonParseError::NoError, masked.constData());
    const QString message = document.object()
                                .value(QStringLiteral("error"))
                                .toObject()
                                .value(QStringLiteral("message"))
                                .toString();
    QVERIFY2(message.startsWith(QLatin1String("key ")) && message.endsWith(QLatin1String(" is wrong")),
             qPrintable(message));
    QVERIFY2(!leaksPartOf(message, KeyA), qPrintable(message));
}

void tst_SecretRedactor::matcherFindsTheLongestAndMergesOverlaps()
{
    const SecretMatcher matcher(
        { { "abcdef", "<short>" }, { "abcdefghij", "<long>" }, { "hijklmnop", "<other>" } });
    QCOMPARE(matcher.mask("x abcdefghij y"), QByteArray("x <long> y"));
    QCOMPARE(matcher.mask("x abcdefgXX y"), QByteArray("x <short>gXX y"));
    // Overlapping spellings become one masked range: nothing of either is left.
    QCOMPARE(matcher.mask("abcdefghijklmnop"), QByteArray("<long>"));
    QCOMPARE(matcher.mask("abcde"), QByteArray("abcde"));
    QVERIFY(
        SecretMatcher(QList<SecretMatcher::Secret> { { "abc", "x" } }).isEmpty()); // too short to be a secret
}

void tst_SecretRedactor::manyKeysAnySpelling()
{
    // 10,000 keys (the matcher looks them up by prefix, whatever their number): each is found, escaped or
    // not.
    QList<ApiKey> keys;
    for (int i = 0; i < 10000; ++i)
        keys.append({ QStringLiteral("sk-many-%1-abcdefghijklmnop").arg(i, 5, 10, QLatin1Char('0')),
                      QString(), true });
    KeyPool pool;
    pool.setKeys(keys);
    const SecretRedactor redactor(&pool);
    const QByteArray text
        = "error for sk-many-07777-abcdefghijklmnop and sk\\u002dmany-00042-abcdefghijklmnop";
    const QByteArray masked = redactor.maskConfiguredSecrets(text);
    QVERIFY2(!masked.contains("07777-abcdefgh") && !masked.contains("00042-abcdefgh"), masked.constData());
    QCOMPARE(redactor.maskConfiguredSecrets("POST /v1/chat/completions model=gpt-4o status=200"),
             QByteArray("POST /v1/chat/completions model=gpt-4o status=200"));
}

void tst_SecretRedactor::headerValuesMaskedInAscii()
{
    const SecretRedactor redactor(&m_pool);
    QList<QPair<QByteArray, QByteArray>> headers {
        { "Location", "https://x.test/cb?key=" + KeyA.toUtf8().toPercentEncoding() },
        { "X-Request-Id", "req_123" }
    };
    QVERIFY(redactor.maskHeaderValues(&headers));
    QVERIFY2(!leaksPartOf(QString::fromUtf8(QByteArray::fromPercentEncoding(headers.at(0).second)), KeyA),
             headers.at(0).second.constData());
    QVERIFY(headers.at(0).second.contains("..."));
    for (const char c : headers.at(0).second)
        QVERIFY(static_cast<unsigned char>(c) < 0x80);
    QCOMPARE(headers.at(1).second, QByteArray("req_123"));
    QVERIFY(!redactor.maskHeaderValues(&headers)); // nothing left to mask
}

namespace {
QStringList g_captured;
void captureMessage(QtMsgType, const QMessageLogContext &, const QString &message)
{
    g_captured.append(message);
}
} // namespace

void tst_SecretRedactor::logMessagesFromInsideThePoolAreRedactedWithoutDeadlock()
{
    // The pool logs a key that stops working; the redaction step reads the key list. This used to
    // deadlock the proxy (the pool's lock was held while logging).
    KeyPool pool;
    pool.setKeys({ { KeyB, QString(), true } });
    const SecretRedactor redactor(&pool);
    g_captured.clear();
    const QtMessageHandler previous = qInstallMessageHandler(captureMessage);
    installRedactingMessageHandler(&redactor);
    QLoggingCategory::setFilterRules(QStringLiteral("keyrelay.keys.info=true\nkeyrelay.keys.warning=true"));
    pool.report(KeyPool::keyId(KeyB), QString(), keyrelay::KeyVerdict::Invalid, -1,
                QStringLiteral("401: the key %1 is wrong").arg(KeyB));
    pool.report(KeyPool::keyId(KeyB), QStringLiteral("gpt-4o"), keyrelay::KeyVerdict::RateLimited, 5000,
                QStringLiteral("429 rate limited"));
    pool.report(KeyPool::keyId(KeyB), QStringLiteral("gpt-4o"), keyrelay::KeyVerdict::Success, -1, QString());
    installRedactingMessageHandler(nullptr);
    qInstallMessageHandler(previous);
    QLoggingCategory::setFilterRules(QString());
    QVERIFY(!g_captured.isEmpty());
    for (const QString &message : std::as_const(g_captured))
        QVERIFY2(!message.contains(KeyB), qPrintable(message));
}

QTEST_GUILESS_MAIN(tst_SecretRedactor)
#include "tst_secretredactor.moc"
