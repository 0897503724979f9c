// Unit tests of ServiceHealth: which requests count, the window of recent requests, recovery, and keys.
#include "servicehealth.h"

#include <QtTest>

using keyrelay::HealthAssessment;
using keyrelay::KeyHealth;
using keyrelay::KeyStatus;
using keyrelay::RequestRecord;
using keyrelay::ServiceHealth;

namespace {

RequestRecord request(int status, const QString &error = QString(),
                      const QString &keyId = QStringLiteral("k1"))
{
    RequestRecord record;
    record.method = QStringLiteral("POST");
    record.path = QStringLiteral("/v1/chat/completions");
    record.status = status;
    record.error = error;
    record.keyId = keyId;
    return record;
}

KeyStatus key(KeyHealth health, bool enabled = true, const QDateTime &coolingUntil = QDateTime())
{
    KeyStatus status;
    status.health = health;
    status.enabled = enabled;
    status.coolingUntil = coolingUntil;
    return status;
}

const QString Unreachable = QStringLiteral("the upstream https://api.example.com refused the connection");

} // namespace

class TestServiceHealth : public QObject
{
    Q_OBJECT

    QDateTime m_now;
    ServiceHealth::Clock clock()
    {
        return [this] {
            return m_now;
        };
    }

private Q_SLOTS:
    void init() { m_now = QDateTime(QDate(2026, 12, 7), QTime(10, 0), Qt::UTC); }

    void classify_data()
    {
        QTest::addColumn<int>("status");
        QTest::addColumn<QString>("keyId");
        QTest::addColumn<bool>("keysInPool");
        QTest::addColumn<ServiceHealth::Outcome>("outcome");
        using O = ServiceHealth::Outcome;
        const QString k = QStringLiteral("k1");
        QTest::newRow("200") << 200 << k << true << O::Success;
        QTest::newRow("client left") << 0 << k << true << O::NotCounted;
        QTest::newRow("400 client") << 400 << k << true << O::NotCounted;
        QTest::newRow("401 key") << 401 << k << true << O::NotCounted;
        QTest::newRow("403 blocked website") << 403 << QString() << true << O::NotCounted;
        QTest::newRow("429") << 429 << k << true << O::NotCounted;
        QTest::newRow("500 upstream") << 500 << k << true << O::UpstreamFailure;
        QTest::newRow("502 unreachable") << 502 << k << true << O::UpstreamFailure;
        QTest::newRow("504 timeout") << 504 << k << true << O::UpstreamFailure;
        QTest::newRow("503 no enabled key") << 503 << QString() << true << O::NotCounted;
        QTest::newRow("502 pass-through") << 502 << QString() << false << O::UpstreamFailure;
    }

    void classify()
    {
        QFETCH(int, status);
        QFETCH(QString, keyId);
        QFETCH(bool, keysInPool);
        QFETCH(ServiceHealth::Outcome, outcome);
        QCOMPARE(ServiceHealth::classify(request(status, QString(), keyId), keysInPool), outcome);
    }

    void keyEventRowsDoNotCount()
    {
        RequestRecord event = request(0);
        event.method = QStringLiteral("KEY");
        QCOMPARE(ServiceHealth::classify(event, true), ServiceHealth::Outcome::NotCounted);
    }

    void healthyWithoutRequests()
    {
        ServiceHealth health(clock());
        QVERIFY(!health.assess().degraded());
        QVERIFY(!health.nextChange().isValid());
    }

    void oneFailureIsNotDegraded()
    {
        ServiceHealth health(clock());
        health.addRequest(request(502, Unreachable));
        QVERIFY(!health.assess().upstreamFailing);
    }

    void upstreamDownIsDegraded()
    {
        ServiceHealth health(clock());
        health.addRequest(request(200));
        for (int i = 0; i < 3; ++i) {
            m_now = m_now.addSecs(1);
            health.addRequest(request(i == 2 ? 504 : 502, i == 2 ? QStringLiteral("timeout") : Unreachable));
        }
        const HealthAssessment result = health.assess();
        QVERIFY(result.upstreamFailing);
        QVERIFY(result.degraded());
        QCOMPARE(result.recentFailures, 3);
        QCOMPARE(result.recentRequests, 4);
        QCOMPARE(result.lastFailure, QStringLiteral("timeout"));
        QCOMPARE(result.lastFailureStatus, 504);
    }

    void clientErrorsDoNotMakeItDegraded()
    {
        ServiceHealth health(clock());
        for (int i = 0; i < 10; ++i)
            health.addRequest(request(i % 2 ? 400 : 403, QStringLiteral("blocked"), QString()));
        QVERIFY(!health.assess().degraded());
        QCOMPARE(health.assess().recentRequests, 0);
    }

    void fewFailuresAmongManySuccessesAreNotDegraded()
    {
        ServiceHealth health(clock());
        for (int i = 0; i < 6; ++i)
            health.addRequest(request(200));
        health.addRequest(request(502, Unreachable));
        health.addRequest(request(502, Unreachable));
        QVERIFY(!health.assess().upstreamFailing); // 2 of 8
    }

    void recoversAfterSuccesses()
    {
        ServiceHealth health(clock());
        for (int i = 0; i < 5; ++i)
            health.addRequest(request(502, Unreachable));
        QVERIFY(health.assess().upstreamFailing);
        health.addRequest(request(200));
        QVERIFY(health.assess().upstreamFailing); // one success may be luck
        health.addRequest(request(200));
        QVERIFY(!health.assess().upstreamFailing);
        health.addRequest(request(502, Unreachable));
        QVERIFY(health.assess().upstreamFailing); // 6 of 8 failed, the latest too
    }

    void failuresAgeOutOfTheWindow()
    {
        ServiceHealth health(clock());
        health.addRequest(request(502, Unreachable));
        m_now = m_now.addSecs(10);
        health.addRequest(request(502, Unreachable));
        QVERIFY(health.assess().upstreamFailing);
        const QDateTime first = m_now.addSecs(-10 + ServiceHealth::WindowSeconds);
        QCOMPARE(health.nextChange(), first);
        m_now = first;
        QVERIFY(!health.assess().upstreamFailing); // one failure left in the window
        QCOMPARE(health.assess().recentFailures, 1);
        m_now = m_now.addSecs(10);
        QCOMPARE(health.assess().recentRequests, 0);
        QVERIFY(!health.nextChange().isValid());
    }

    void windowHoldsTheLastRequestsOnly()
    {
        ServiceHealth health(clock());
        for (int i = 0; i < ServiceHealth::WindowRequests; ++i)
            health.addRequest(request(502, Unreachable));
        for (int i = 0; i < ServiceHealth::WindowRequests / 2 + 1; ++i)
            health.addRequest(request(200));
        const HealthAssessment result = health.assess();
        QCOMPARE(result.recentRequests, ServiceHealth::WindowRequests);
        QCOMPARE(result.recentFailures, ServiceHealth::WindowRequests / 2 - 1);
        QVERIFY(!result.upstreamFailing);
    }

    void clearRequestsForgetsFailures()
    {
        ServiceHealth health(clock());
        for (int i = 0; i < 3; ++i)
            health.addRequest(request(502, Unreachable));
        health.clearRequests();
        QVERIFY(!health.assess().degraded());
    }

    void mostKeysUnusableIsDegraded()
    {
        ServiceHealth health(clock());
        health.setKeys({ key(KeyHealth::Ok), key(KeyHealth::Invalid), key(KeyHealth::Exhausted),
                         key(KeyHealth::Unknown), key(KeyHealth::Invalid) });
        HealthAssessment result = health.assess();
        QVERIFY(result.keysFailing);
        QCOMPARE(result.keys, 5);
        QCOMPARE(result.enabledKeys, 5);
        QCOMPARE(result.unusableKeys, 3);

        // Half is not most.
        health.setKeys({ key(KeyHealth::Ok), key(KeyHealth::Invalid) });
        QVERIFY(!health.assess().keysFailing);
        // Disabled keys are the user's choice: counted among the enabled ones only.
        health.setKeys(
            { key(KeyHealth::Ok), key(KeyHealth::Invalid, false), key(KeyHealth::Invalid, false) });
        QVERIFY(!health.assess().keysFailing);
    }

    void noEnabledKeyIsDegraded()
    {
        ServiceHealth health(clock());
        health.setKeys({ key(KeyHealth::Ok, false) });
        QVERIFY(health.assess().keysFailing);
        QCOMPARE(health.assess().enabledKeys, 0);
    }

    void passThroughIsNotDegradedForKeys()
    {
        ServiceHealth health(clock());
        health.setKeys({});
        QVERIFY(!health.assess().keysFailing);
    }

    void rateLimitedKeysCountUntilTheirCoolingEnds()
    {
        ServiceHealth health(clock());
        const QDateTime until = m_now.addSecs(30);
        health.setKeys({ key(KeyHealth::RateLimited, true, until), key(KeyHealth::RateLimited, true, until),
                         key(KeyHealth::Ok) });
        QVERIFY(health.assess().keysFailing);
        QCOMPARE(health.nextChange(), until);
        m_now = until;
        QVERIFY(!health.assess().keysFailing);
    }
};

QTEST_GUILESS_MAIN(TestServiceHealth)
#include "tst_servicehealth.moc"
