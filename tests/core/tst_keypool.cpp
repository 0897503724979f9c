// Unit tests of KeyPool: rotation, health, pass-through, masking, parsing, signals, thread safety.
#include "keypool.h"

#include <QDateTime>
#include <QSignalSpy>
#include <QThread>
#include <QtTest>

#include <atomic>
#include <functional>
#include <memory>

using keyrelay::ApiKey;
using keyrelay::HealthPolicy;
using keyrelay::KeyHealth;
using keyrelay::KeyLease;
using keyrelay::KeyPool;
using keyrelay::KeyStatus;
using keyrelay::KeyVerdict;
using keyrelay::UpstreamVerdict;

namespace {

const QString Model = QStringLiteral("gpt-4o-mini");
const QString OtherModel = QStringLiteral("gpt-4o");

QString secretFor(int i)
{
    return QStringLiteral("sk-test-%1-abcdefghijklmnopqrstuvwxyz%2").arg(i).arg(1000 + i);
}

QList<ApiKey> makeKeys(int count)
{
    QList<ApiKey> keys;
    for (int i = 0; i < count; ++i)
        keys.append(ApiKey { secretFor(i), QString(), true });
    return keys;
}

/// The id of the key made by makeKeys() at @p i.
QString idOf(int i)
{
    return KeyPool::keyId(secretFor(i));
}

/// Takes a key the way the proxy does; returns its index, -1 when no key was handed out.
int next(KeyPool &pool, const QSet<QString> &exclude = {}, const QString &model = Model)
{
    return pool.acquireFor(exclude, model).index;
}

/// Books an upstream answer the way the proxy does: KeyPool::classify() reads it, report() records it.
void answer(KeyPool &pool, int i, int status, const QByteArray &body = QByteArray(), qint64 retryAfterMs = -1,
            const QString &model = Model)
{
    const UpstreamVerdict verdict = KeyPool::classify(status, body);
    pool.report(idOf(i), model, verdict.verdict, retryAfterMs, verdict.reason);
}

/// Where the pool's "now" comes from: moved by hand, never by sleeping.
struct FakeClock
{
    QDateTime now = QDateTime(QDate(2026, 11, 28), QTime(12, 0), Qt::UTC);
    std::function<QDateTime()> function()
    {
        return [this] {
            return now;
        };
    }
};

} // namespace

class tst_KeyPool : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void classify_data();
    void classify();
    void parseDurationMs_data();
    void parseDurationMs();
    void coolingIsPerModelAndEndsExactlyOnTime();
    void repeated429sBackOffExponentially();
    void invalidKeyUsedOnceUntilItsRecheck();
    void allCoolingGivesRetryAt();
    void reportsFollowTheKeyNotItsIndex();
    void emptyPool();
    void roundRobinIsStrict();
    void disabledKeySkipped();
    void unauthorizedMarksInvalid();
    void exhaustedKeyWaitsForItsOwnRecheck();
    void rateLimitCoolsDown();
    void rateLimitRetryAfterDefaultsAndCap();
    void allCoolingNamesTheSoonestRecovery();
    void successClearsCoolDown();
    void excludeHonoured();
    void whatIsLeftWhenNoKeyIsFree();
    void passThroughRotates();
    void passThroughInvalid();
    void setKeysKeepsCountersAndDropsDuplicates();
    void setKeysShrinkingResetsCursor();
    void labels();
    void mask_data();
    void mask();
    void maskNeverRevealsTheMiddle();
    void parseKeyList_data();
    void parseKeyList();
    void parseKeyListTrailingComment();
    void signalsEmitted();
    void snapshotCounters();
    void threadSafety();
    void rechecksAreScheduledForInvalidKeysOnly();
    void concurrencyLimitPerKey();
    void recoveryIsNotAlsoAFailure();
    void rateLimitOnInvalidKeyKeepsItsRecheck();
    void reenablingStartsAfresh();
    void failureWithoutReasonStillSignalled();
    void statusChangeSignalledOncePerSnapshot();
};

void tst_KeyPool::emptyPool()
{
    KeyPool pool;
    QVERIFY(pool.isEmpty());
    QCOMPARE(pool.size(), 0);
    const KeyLease lease = pool.acquireFor({}, Model);
    QVERIFY(!lease.isValid());
    QCOMPARE(lease.index, -1);
    QVERIFY(lease.keyId.isEmpty());
    QVERIFY(!lease.retryAt.isValid()); // nothing will free up: not "try again later"
    // A report about a key the pool does not hold changes nothing.
    QSignalSpy statusChanged(&pool, &KeyPool::keyStatusChanged);
    pool.report(idOf(0), Model, KeyVerdict::Invalid, -1, QStringLiteral("401"));
    QCOMPARE(statusChanged.count(), 0);
    QVERIFY(pool.snapshot().isEmpty());
}

void tst_KeyPool::roundRobinIsStrict()
{
    KeyPool pool;
    pool.setKeys(makeKeys(3));
    QCOMPARE(pool.size(), 3);
    for (int i = 0; i < 30; ++i) {
        // One rotation for every model: the model only matters for cool-downs.
        const QString model = i % 2 ? Model : OtherModel;
        const KeyLease lease = pool.acquireFor({}, model);
        QVERIFY(lease.isValid());
        QCOMPARE(lease.index, i % 3);
        QCOMPARE(lease.secret, secretFor(i % 3));
        QCOMPARE(lease.keyId, idOf(i % 3));
        QVERIFY(!lease.retryAt.isValid());
        // Requests that succeed do not change the order.
        const UpstreamVerdict ok = KeyPool::classify(200, QByteArray());
        pool.report(lease.keyId, model, ok.verdict, -1, ok.reason);
    }
    const QList<KeyStatus> statuses = pool.snapshot();
    QCOMPARE(statuses.size(), 3);
    for (int i = 0; i < 3; ++i) {
        QCOMPARE(statuses.at(i).id, idOf(i));
        QCOMPARE(statuses.at(i).requests, quint64(10));
        QCOMPARE(statuses.at(i).errors, quint64(0));
        QCOMPARE(statuses.at(i).health, KeyHealth::Ok);
    }
}

void tst_KeyPool::disabledKeySkipped()
{
    KeyPool pool;
    QList<ApiKey> keys = makeKeys(3);
    keys[1].enabled = false;
    pool.setKeys(keys);
    QList<int> order;
    for (int i = 0; i < 6; ++i)
        order.append(next(pool));
    QCOMPARE(order, (QList<int> { 0, 2, 0, 2, 0, 2 }));
    QCOMPARE(pool.snapshot().at(1).requests, quint64(0));
    QVERIFY(!pool.snapshot().at(1).enabled);

    // Disabling at run time, then re-enabling.
    pool.setEnabled(2, false);
    QCOMPARE(next(pool), 0);
    QCOMPARE(next(pool), 0);
    pool.setEnabled(0, false);
    const KeyLease none = pool.acquireFor({}, Model);
    QVERIFY(!none.isValid());
    QVERIFY(!none.retryAt.isValid()); // a disabled key never frees up by itself
    QCOMPARE(next(pool, {}, OtherModel), -1);
    pool.setEnabled(1, true);
    QCOMPARE(next(pool), 1);
    QCOMPARE(next(pool), 1);
    QVERIFY(pool.keys().at(1).enabled);
    QVERIFY(!pool.keys().at(0).enabled);

    // Re-enabling a key gives it a clean slate: no cool-down, no verdict.
    pool.report(idOf(1), Model, KeyVerdict::RateLimited, 600000, QStringLiteral("429"));
    pool.report(idOf(1), Model, KeyVerdict::Invalid, -1, QStringLiteral("401"));
    pool.setEnabled(1, false);
    pool.setEnabled(1, true);
    const KeyStatus status = pool.snapshot().at(1);
    QCOMPARE(status.health, KeyHealth::Unknown);
    QVERIFY(!status.coolingUntil.isValid());
    QVERIFY(status.coolingByModel.isEmpty());
    QCOMPARE(next(pool), 1);
}

void tst_KeyPool::unauthorizedMarksInvalid()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(3));
    QCOMPARE(pool.policy().recheckInvalidSec, 300);
    const QDateTime start = clock.now;
    QCOMPARE(next(pool), 0);
    answer(pool, 1, 401, R"({"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}})");
    const KeyStatus status = pool.snapshot().at(1);
    QCOMPARE(status.health, KeyHealth::Invalid);
    QCOMPARE(status.errors, quint64(1));
    QCOMPARE(status.lastError, QStringLiteral("401 invalid_api_key: Incorrect API key provided"));
    QCOMPARE(status.coolingUntil, start.addSecs(300)); // when it is tried again
    QList<int> order;
    for (int i = 0; i < 6; ++i)
        order.append(next(pool));
    QCOMPARE(order, (QList<int> { 2, 0, 2, 0, 2, 0 }));
    // Nothing else left: the invalid key is tried rather than the request refused (a key fixed upstream
    // works at once). The old API answered "no usable key" here.
    QCOMPARE(next(pool, { idOf(0), idOf(2) }), 1);

    // Without a message the reason still says what happened.
    clock.now = start.addSecs(1);
    answer(pool, 2, 401);
    QVERIFY(pool.snapshot().at(2).lastError.startsWith(QLatin1String("401")));
    QCOMPARE(next(pool), 0);
    QCOMPARE(next(pool), 0);

    // Every key invalid: still a lease, always the key due for its re-check first (not a rotation), and
    // the next one due when that one was tried already.
    clock.now = start.addSecs(2);
    answer(pool, 0, 401);
    for (int i = 0; i < 3; ++i) {
        const KeyLease lease = pool.acquireFor({}, Model);
        QVERIFY(lease.isValid());
        QCOMPARE(lease.index, 1);
        QVERIFY(!lease.retryAt.isValid());
    }
    QCOMPARE(next(pool, { idOf(1) }), 2);
    QCOMPARE(next(pool, { idOf(1), idOf(2) }), 0);

    // Its re-check time comes: no request traffic for it (the background re-check, a GET of the model
    // list, decides), still only the last resort.
    clock.now = start.addSecs(300);
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(300));
    QCOMPARE(next(pool), 1); // last resort: every key is invalid
    const QList<KeyLease> due = pool.takeDueRechecks();
    QCOMPARE(due.size(), 1);
    QCOMPARE(due.first().keyId, idOf(1));
    QCOMPARE(pool.snapshot().at(1).coolingUntil,
             start.addSecs(600)); // the next re-check, if this one is lost
    QVERIFY(pool.takeDueRechecks().isEmpty());

    pool.resetHealth(0);
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Unknown);
    QVERIFY(!pool.snapshot().at(0).coolingUntil.isValid());
    order.clear();
    for (int i = 0; i < 3; ++i)
        order.append(next(pool));
    QCOMPARE(order, (QList<int> { 0, 0, 0 })); // keys 1 and 2 stay out until a re-check says they work
}

void tst_KeyPool::exhaustedKeyWaitsForItsOwnRecheck()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setPolicy(HealthPolicy { 60, 600, 3 });
    QCOMPARE(pool.policy().recheckExhaustedSec, 600);
    pool.setKeys(makeKeys(2));
    const QDateTime start = clock.now;
    const UpstreamVerdict quota = KeyPool::classify(
        429, R"({"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}})");
    QCOMPARE(quota.verdict, KeyVerdict::Exhausted);
    // A Retry-After does not shorten it: quotas come back on the policy's schedule.
    pool.report(idOf(0), Model, quota.verdict, 30000, quota.reason);
    const KeyStatus status = pool.snapshot().at(0);
    QCOMPARE(status.health, KeyHealth::Exhausted);
    QCOMPARE(status.coolingUntil, start.addSecs(600));
    QCOMPARE(status.errors, quint64(1));
    QCOMPARE(status.lastError, quota.reason);
    // Skipped for every model, not only the one of the request.
    QCOMPARE(next(pool), 1);
    QCOMPARE(next(pool, {}, OtherModel), 1);

    // Both condemned: the one due first is tried (here the invalid key, with the shorter re-check).
    answer(pool, 1, 401);
    QCOMPARE(pool.snapshot().at(1).coolingUntil, start.addSecs(60));
    QCOMPARE(next(pool), 1);
    QCOMPARE(next(pool), 1);
    clock.now = start.addSecs(599);
    QCOMPARE(next(pool, { idOf(1) }), 0); // the last resort before its time
    clock.now = start.addSecs(600);
    // Its trial time: exactly one request may use the exhausted key, the next waits for its answer;
    // the invalid key gets none (the background re-check decides for it).
    QList<int> order;
    for (int i = 0; i < 3; ++i)
        order.append(next(pool));
    QCOMPARE(order, (QList<int> { 0, 1, 1 }));
    QCOMPARE(pool.snapshot().at(0).coolingUntil, start.addSecs(1200)); // the next trial

    QSignalSpy recovered(&pool, &KeyPool::keyRecovered);
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(recovered.count(), 1);
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Ok);
    QVERIFY(!pool.snapshot().at(0).coolingUntil.isValid());
}

void tst_KeyPool::rateLimitCoolsDown()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(3));
    const QDateTime start = clock.now;
    answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded","message":"Rate limit reached"}})", 60000);
    const KeyStatus status = pool.snapshot().at(0);
    QCOMPARE(status.health, KeyHealth::RateLimited);
    QCOMPARE(status.errors, quint64(1));
    QVERIFY(status.lastError.startsWith(QLatin1String("429 rate_limit_exceeded")));
    QCOMPARE(status.coolingUntil, start.addSecs(60));
    QCOMPARE(status.coolingByModel.value(Model), start.addSecs(60));
    QVERIFY(!status.coolingByModel.contains(OtherModel));
    QCOMPARE(status.consecutive429.value(Model), 1);

    QList<int> order;
    for (int i = 0; i < 6; ++i)
        order.append(next(pool));
    QCOMPARE(order, (QList<int> { 1, 2, 1, 2, 1, 2 }));
    // The cool-down is for the model that hit the limit: other models keep the key.
    QCOMPARE(next(pool, {}, OtherModel), 0);

    // Only the cooling key left for the model: no key, but when one frees up; nothing is counted.
    const quint64 requests = pool.snapshot().at(0).requests;
    const KeyLease lease = pool.acquireFor({ idOf(1), idOf(2) }, Model);
    QVERIFY(!lease.isValid());
    QCOMPARE(lease.retryAt, start.addSecs(60));
    QCOMPARE(pool.snapshot().at(0).requests, requests);
    clock.now = start.addMSecs(59999);
    QCOMPARE(next(pool, { idOf(1), idOf(2) }), -1);
    clock.now = start.addSecs(60);
    QCOMPARE(next(pool, { idOf(1), idOf(2) }), 0);
}

void tst_KeyPool::rateLimitRetryAfterDefaultsAndCap()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(5));
    const QDateTime start = clock.now;
    const QString reason = QStringLiteral("429 rate_limit_exceeded");
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, -1,
                reason); // no reset time: the first back-off step
    pool.report(idOf(1), Model, KeyVerdict::RateLimited, 0, reason); // "Retry-After: 0" neither
    pool.report(idOf(2), Model, KeyVerdict::RateLimited, 500, reason); // shorter than the back-off
    pool.report(idOf(3), Model, KeyVerdict::RateLimited, 30000, reason); // longer: as the upstream says
    pool.report(idOf(4), Model, KeyVerdict::RateLimited, qint64(1000000) * 1000, reason); // capped
    QList<KeyStatus> statuses = pool.snapshot();
    QCOMPARE(statuses.at(0).coolingUntil, start.addSecs(1));
    QCOMPARE(statuses.at(1).coolingUntil, start.addSecs(1));
    QCOMPARE(statuses.at(2).coolingUntil, start.addSecs(1));
    QCOMPARE(statuses.at(3).coolingUntil, start.addSecs(30));
    QCOMPARE(statuses.at(4).coolingUntil, start.addSecs(3600));
    QCOMPARE(pool.acquireFor({}, Model).retryAt, start.addSecs(1));

    // Repeated 429s without a reset time double the wait (1 s above), up to a minute.
    const QList<int> waits { 2, 4, 8, 16, 32, 60, 60 };
    for (int i = 0; i < waits.size(); ++i) {
        pool.report(idOf(0), Model, KeyVerdict::RateLimited, -1, reason);
        statuses = pool.snapshot();
        QCOMPARE(statuses.at(0).consecutive429.value(Model), i + 2);
        QCOMPARE(statuses.at(0).coolingByModel.value(Model), start.addSecs(waits.at(i)));
    }
    // A reset time longer than the back-off still wins.
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, 90000, reason);
    QCOMPARE(pool.snapshot().at(0).coolingByModel.value(Model), start.addSecs(90));
    // Each model counts its own 429s.
    pool.report(idOf(0), OtherModel, KeyVerdict::RateLimited, -1, reason);
    QCOMPARE(pool.snapshot().at(0).coolingByModel.value(OtherModel), start.addSecs(1));
    // A success for the model starts its count again.
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, -1, reason);
    QCOMPARE(pool.snapshot().at(0).coolingByModel.value(Model), start.addSecs(1));
    QCOMPARE(pool.snapshot().at(0).consecutive429.value(Model), 1);
}

void tst_KeyPool::allCoolingNamesTheSoonestRecovery()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setPolicy(HealthPolicy { 10, 3600, 3 });
    pool.setKeys(makeKeys(3));
    const QDateTime start = clock.now;
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, 300000, QStringLiteral("429"));
    pool.report(idOf(1), Model, KeyVerdict::RateLimited, 30000, QStringLiteral("429"));
    pool.report(idOf(2), Model, KeyVerdict::RateLimited, 900000, QStringLiteral("429"));
    // The old API handed out the key recovering first anyway; now the request is answered "retry at".
    for (int i = 0; i < 3; ++i) {
        const KeyLease lease = pool.acquireFor({}, Model);
        QVERIFY(!lease.isValid());
        QCOMPARE(lease.index, -1);
        QCOMPARE(lease.retryAt, start.addSecs(30));
    }
    for (const KeyStatus &status : pool.snapshot())
        QCOMPARE(status.requests, quint64(0)); // a refusal is not a request
    // The answer honours the exclusions too.
    QCOMPARE(pool.acquireFor({ idOf(1) }, Model).retryAt, start.addSecs(300));
    QCOMPARE(pool.acquireFor({ idOf(0), idOf(1) }, Model).retryAt, start.addSecs(900));
    const KeyLease none = pool.acquireFor({ idOf(0), idOf(1), idOf(2) }, Model);
    QVERIFY(!none.isValid());
    QVERIFY(!none.retryAt.isValid());
    // Another model is not held up.
    QCOMPARE(next(pool, {}, OtherModel), 0);

    // An invalid key's re-check is no cooling end, even when it comes first.
    pool.report(idOf(1), Model, KeyVerdict::Invalid, -1, QStringLiteral("401"));
    QCOMPARE(pool.snapshot().at(1).coolingUntil, start.addSecs(10));
    QCOMPARE(pool.acquireFor({}, Model).retryAt, start.addSecs(300));
    // A disabled key neither.
    pool.setEnabled(0, false);
    QCOMPARE(pool.acquireFor({}, Model).retryAt, start.addSecs(900));
    // When its re-check is due, the invalid key is still not tried with a request (the background
    // re-check is due instead): the cooling key's end is the answer.
    clock.now = start.addSecs(10);
    QCOMPARE(pool.acquireFor({}, Model).retryAt, start.addSecs(900));
    QCOMPARE(pool.takeDueRechecks().size(), 1);
}

void tst_KeyPool::successClearsCoolDown()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(2));
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, 600000, QStringLiteral("429"));
    QCOMPARE(next(pool), 1);
    QCOMPARE(next(pool), 1);
    // A success with another model says nothing about this one.
    pool.report(idOf(0), OtherModel, KeyVerdict::Success, -1, QString());
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::RateLimited);
    QCOMPARE(pool.snapshot().at(0).coolingUntil, clock.now.addSecs(600));
    QCOMPARE(next(pool), 1);
    // A success with the model ends its cool-down.
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    KeyStatus status = pool.snapshot().at(0);
    QCOMPARE(status.health, KeyHealth::Ok);
    QVERIFY(!status.coolingUntil.isValid());
    QVERIFY(!status.coolingByModel.contains(Model));
    QVERIFY(!status.consecutive429.contains(Model));
    QCOMPARE(next(pool), 0);
    QCOMPARE(next(pool), 1);

    // resetHealth also ends a cool-down, and the back-off count with it.
    pool.report(idOf(1), Model, KeyVerdict::RateLimited, 600000, QStringLiteral("429"));
    pool.report(idOf(1), Model, KeyVerdict::RateLimited, 600000, QStringLiteral("429"));
    QCOMPARE(pool.snapshot().at(1).consecutive429.value(Model), 2);
    QVERIFY(pool.acquireFor({ idOf(0) }, Model).retryAt.isValid());
    pool.resetHealth(1);
    QCOMPARE(next(pool, { idOf(0) }), 1);
    status = pool.snapshot().at(1);
    QCOMPARE(status.health, KeyHealth::Unknown);
    QVERIFY(status.consecutive429.isEmpty());
    QVERIFY(status.coolingByModel.isEmpty());
}

void tst_KeyPool::excludeHonoured()
{
    KeyPool pool;
    pool.setKeys(makeKeys(3));
    for (int i = 0; i < 6; ++i)
        QVERIFY(next(pool, { idOf(0) }) != 0);
    QCOMPARE(next(pool, { idOf(0), idOf(1) }), 2);
    QCOMPARE(next(pool, { idOf(1), idOf(2) }), 0);
    const KeyLease none = pool.acquireFor({ idOf(0), idOf(1), idOf(2) }, Model);
    QVERIFY(!none.isValid());
    QVERIFY(!none.retryAt.isValid());
    // Ids the pool does not hold are harmless.
    QCOMPARE(next(pool, { QString(), KeyPool::keyId(QStringLiteral("sk-not-in-the-pool")) }), 1);
    // The retry pattern of the proxy: try every key once.
    QSet<QString> tried;
    for (int i = 0; i < 3; ++i) {
        const KeyLease lease = pool.acquireFor(tried, Model);
        QVERIFY(lease.isValid());
        QVERIFY(!tried.contains(lease.keyId));
        tried.insert(lease.keyId);
    }
    QCOMPARE(tried, (QSet<QString> { idOf(0), idOf(1), idOf(2) }));
    QVERIFY(!pool.acquireFor(tried, Model).isValid());
    QVERIFY(!pool.acquireFor(tried, OtherModel).isValid()); // exclusions are not per model
}

void tst_KeyPool::whatIsLeftWhenNoKeyIsFree()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    QVERIFY(!pool.acquireFor({}, Model).isValid());
    pool.setKeys(makeKeys(3));
    QCOMPARE(next(pool), 0);
    QCOMPARE(next(pool, { idOf(0), idOf(1) }), 2);
    QCOMPARE(next(pool, { idOf(0), idOf(1), idOf(2) }), -1);
    pool.report(idOf(2), Model, KeyVerdict::Invalid, -1, QStringLiteral("401"));
    // Only an invalid key left: it is tried rather than refused (the old API had "no usable key").
    QCOMPARE(next(pool, { idOf(0), idOf(1) }), 2);
    QCOMPARE(next(pool, { idOf(0) }), 1);
    pool.setEnabled(1, false);
    QCOMPARE(next(pool, { idOf(0) }), 2);
    QCOMPARE(next(pool), 0);

    // A cooling key wins over an invalid one: no key now, and when the cooling one is free.
    pool.report(idOf(0), Model, KeyVerdict::RateLimited, 100000, QStringLiteral("429"));
    QList<quint64> requests;
    for (const KeyStatus &status : pool.snapshot())
        requests.append(status.requests);
    const KeyLease lease = pool.acquireFor({}, Model);
    QVERIFY(!lease.isValid());
    QCOMPARE(lease.retryAt, clock.now.addSecs(100));
    QList<quint64> after;
    for (const KeyStatus &status : pool.snapshot())
        after.append(status.requests);
    QCOMPARE(after, requests); // asking without getting a key does not count as a request
    // With that key excluded, the invalid one is the last resort again.
    QCOMPARE(next(pool, { idOf(0) }), 2);
    // For another model the cooling key is free.
    QCOMPARE(next(pool, {}, OtherModel), 0);
}

void tst_KeyPool::passThroughRotates()
{
    KeyPool pool;
    QStringList seen;
    for (int i = 0; i < 7; ++i) {
        const KeyLease lease = pool.passThrough(QStringLiteral("k1|k2|k3"));
        QVERIFY(lease.isValid());
        QCOMPARE(lease.index, -1);
        QCOMPARE(lease.label, KeyPool::mask(lease.secret));
        seen.append(lease.secret);
    }
    QCOMPARE(
        seen,
        (QStringList { QStringLiteral("k1"), QStringLiteral("k2"), QStringLiteral("k3"), QStringLiteral("k1"),
                       QStringLiteral("k2"), QStringLiteral("k3"), QStringLiteral("k1") }));

    KeyPool single;
    const QString key = secretFor(5);
    for (int i = 0; i < 3; ++i) {
        const KeyLease lease = single.passThrough(key);
        QCOMPARE(lease.secret, key);
        QVERIFY(!lease.label.contains(key));
        QCOMPARE(lease.label, KeyPool::mask(key));
    }
    // Empty parts are skipped.
    KeyPool gaps;
    QCOMPARE(gaps.passThrough(QStringLiteral("|a||b|")).secret, QStringLiteral("a"));
    QCOMPARE(gaps.passThrough(QStringLiteral("|a||b|")).secret, QStringLiteral("b"));
    QCOMPARE(gaps.passThrough(QStringLiteral("|a||b|")).secret, QStringLiteral("a"));
    // Pass-through never touches the pool's own counters.
    QVERIFY(pool.snapshot().isEmpty());
}

void tst_KeyPool::passThroughInvalid()
{
    KeyPool pool;
    QVERIFY(!pool.passThrough(QString()).isValid());
    QVERIFY(!pool.passThrough(QStringLiteral("|")).isValid());
    QVERIFY(!pool.passThrough(QStringLiteral("||")).isValid());
}

void tst_KeyPool::setKeysKeepsCountersAndDropsDuplicates()
{
    KeyPool pool;
    pool.setKeys(makeKeys(3));
    for (int i = 0; i < 9; ++i)
        QVERIFY(pool.acquireFor({}, Model).isValid());
    pool.report(idOf(1), Model, KeyVerdict::NotKeysFault, -1, QStringLiteral("upstream error"));
    answer(pool, 2, 401);

    QSignalSpy changed(&pool, &KeyPool::keysChanged);
    const QString fresh = QStringLiteral("sk-fresh-000000000000000000000000ZZZZ");
    pool.setKeys({ ApiKey { secretFor(2), QStringLiteral("second"), true },
                   ApiKey { QStringLiteral("  ") + secretFor(1) + QStringLiteral("\n"), QString(), true },
                   ApiKey { fresh, QString(), true },
                   ApiKey { secretFor(2), QStringLiteral("duplicate"), true },
                   ApiKey { QStringLiteral("   "), QString(), true } });
    QCOMPARE(changed.count(), 1);
    QCOMPARE(pool.size(), 3);
    const QList<ApiKey> keys = pool.keys();
    QCOMPARE(keys.at(0).secret, secretFor(2));
    QCOMPARE(keys.at(0).label, QStringLiteral("second"));
    QCOMPARE(keys.at(1).secret, secretFor(1)); // trimmed
    QCOMPARE(keys.at(2).secret, fresh);

    const QList<KeyStatus> statuses = pool.snapshot();
    QCOMPARE(statuses.at(0).id, idOf(2)); // the id follows the key, not its place
    QCOMPARE(statuses.at(0).requests, quint64(3));
    QCOMPARE(statuses.at(0).errors, quint64(1));
    QCOMPARE(statuses.at(0).health, KeyHealth::Invalid); // health survives too
    QCOMPARE(statuses.at(0).label, QStringLiteral("second"));
    QCOMPARE(statuses.at(1).id, idOf(1)); // the same id for the trimmed secret
    QCOMPARE(statuses.at(1).requests, quint64(3));
    QCOMPARE(statuses.at(1).errors, quint64(1));
    QCOMPARE(statuses.at(1).lastError, QStringLiteral("upstream error"));
    QVERIFY(statuses.at(1).lastUsed.isValid());
    QCOMPARE(statuses.at(2).id, KeyPool::keyId(fresh));
    QCOMPARE(statuses.at(2).requests, quint64(0));
    QCOMPARE(statuses.at(2).errors, quint64(0));
    QCOMPARE(statuses.at(2).health, KeyHealth::Unknown);
    QVERIFY(!statuses.at(2).lastUsed.isValid());
    QCOMPARE(statuses.at(2).masked, KeyPool::mask(fresh));

    // The removed key's counters are gone: adding it back starts from zero.
    pool.setKeys(makeKeys(1));
    QCOMPARE(pool.snapshot().at(0).requests, quint64(0));
}

void tst_KeyPool::setKeysShrinkingResetsCursor()
{
    KeyPool pool;
    pool.setKeys(makeKeys(4));
    for (int i = 0; i < 3; ++i)
        QCOMPARE(next(pool), i); // cursor now at 3
    pool.setKeys(makeKeys(2));
    const KeyLease lease = pool.acquireFor({}, Model);
    QVERIFY(lease.isValid());
    QCOMPARE(lease.index, 0);
    QCOMPARE(next(pool), 1);
    pool.setKeys({});
    QVERIFY(pool.isEmpty());
    QVERIFY(!pool.acquireFor({}, Model).isValid());
}

void tst_KeyPool::labels()
{
    KeyPool pool;
    pool.setKeys(
        { ApiKey { secretFor(0), QStringLiteral("work"), true }, ApiKey { secretFor(1), QString(), true } });
    KeyLease lease = pool.acquireFor({}, Model);
    QCOMPARE(lease.label, QStringLiteral("work"));
    lease = pool.acquireFor({}, Model);
    QCOMPARE(lease.label, KeyPool::mask(secretFor(1)));
    QVERIFY(!lease.label.contains(secretFor(1)));
    QCOMPARE(pool.snapshot().at(1).label, KeyPool::mask(secretFor(1)));

    QSignalSpy changed(&pool, &KeyPool::keysChanged);
    pool.setLabel(1, QStringLiteral("  home  "));
    QCOMPARE(changed.count(), 1);
    QCOMPARE(pool.keys().at(1).label, QStringLiteral("home"));
    QCOMPARE(pool.snapshot().at(1).label, QStringLiteral("home"));
    QCOMPARE(pool.acquireFor({ idOf(0) }, Model).label, QStringLiteral("home"));
    pool.setLabel(1, QStringLiteral("home")); // no change
    QCOMPARE(changed.count(), 1);
    pool.setLabel(5, QStringLiteral("nope")); // out of range
    pool.setLabel(-1, QStringLiteral("nope"));
    QCOMPARE(changed.count(), 1);
    pool.setLabel(1, QString()); // back to the masked form
    QCOMPARE(changed.count(), 2);
    QCOMPARE(pool.snapshot().at(1).label, KeyPool::mask(secretFor(1)));
    QCOMPARE(pool.acquireFor({ idOf(0) }, Model).label, KeyPool::mask(secretFor(1)));
}

void tst_KeyPool::mask_data()
{
    QTest::addColumn<QString>("secret");
    QTest::addColumn<QString>("masked");
    const QString dots(QChar(0x2026));

    QTest::newRow("openai key") << QStringLiteral("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789a1b2")
                                << QStringLiteral("sk-") + dots + QStringLiteral("a1b2");
    QTest::newRow("classic key") << QStringLiteral("sk-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHwxyz")
                                 << QStringLiteral("sk-") + dots + QStringLiteral("wxyz");
    QTest::newRow("20 chars") << QStringLiteral("sk-12345678901234567")
                              << QStringLiteral("sk-") + dots + QStringLiteral("4567");
    QTest::newRow("19 chars") << QStringLiteral("sk-1234567890123456") << dots + QStringLiteral("56");
    QTest::newRow("12 chars") << QStringLiteral("sk-123456789") << dots + QStringLiteral("89");
    QTest::newRow("surrounding spaces") << QStringLiteral("  sk-abcdefghijklmnop9876 ")
                                        << QStringLiteral("sk-") + dots + QStringLiteral("9876");
    QTest::newRow("11 chars") << QStringLiteral("abcdefghijk") << dots + QStringLiteral("jk");
    QTest::newRow("8 chars") << QStringLiteral("abcdefgh") << dots + QStringLiteral("gh");
    QTest::newRow("7 chars") << QStringLiteral("abcdefg") << dots;
    QTest::newRow("5 chars") << QStringLiteral("abcde") << dots;
    QTest::newRow("1 char") << QStringLiteral("x") << dots;
    QTest::newRow("empty") << QString() << dots;
}

void tst_KeyPool::mask()
{
    QFETCH(QString, secret);
    QFETCH(QString, masked);
    QCOMPARE(KeyPool::mask(secret), masked);
    if (!secret.trimmed().isEmpty())
        QVERIFY(KeyPool::mask(secret) != secret.trimmed());
}

void tst_KeyPool::maskNeverRevealsTheMiddle()
{
    const QString alphabet = QStringLiteral("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
    for (int length = 1; length <= 100; ++length) {
        QString key;
        for (int i = 0; i < length; ++i)
            key.append(alphabet.at((i * 7 + length) % alphabet.size()));
        const QString masked = KeyPool::mask(key);
        QVERIFY2(masked.contains(QChar(0x2026)), qPrintable(masked));
        // No run of 5 characters of the key survives, and at most 7 are shown at all.
        for (int i = 0; i + 5 <= length; ++i)
            QVERIFY2(!masked.contains(key.mid(i, 5)), qPrintable(QString::number(length)));
        QVERIFY(masked.size() <= 8);
        if (length >= 20) {
            QVERIFY(masked.startsWith(key.left(3)));
            QVERIFY(masked.endsWith(key.right(4)));
            QVERIFY(!masked.contains(key.mid(3, length - 7)));
        } else {
            QVERIFY(masked.size() <= 3);
        }
    }
}

void tst_KeyPool::parseKeyList_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QStringList>("keys");
    const QStringList three { QStringLiteral("k1"), QStringLiteral("k2"), QStringLiteral("k3") };

    QTest::newRow("newlines") << QStringLiteral("k1\nk2\nk3") << three;
    QTest::newRow("commas") << QStringLiteral("k1,k2,k3") << three;
    QTest::newRow("commas and spaces") << QStringLiteral("k1, k2 ,  k3") << three;
    QTest::newRow("pipes") << QStringLiteral("k1|k2|k3") << three;
    QTest::newRow("semicolons") << QStringLiteral("k1;k2;k3") << three;
    QTest::newRow("spaces") << QStringLiteral("k1 k2\tk3") << three;
    QTest::newRow("comments") << QStringLiteral("# my keys\nk1\n   # indented comment\nk2\n#k9\nk3") << three;
    QTest::newRow("blank lines") << QStringLiteral("\n\nk1\n\n   \n\t\nk2\nk3\n\n") << three;
    QTest::newRow("surrounding whitespace") << QStringLiteral("   k1   \n\tk2\t\n k3 ") << three;
    QTest::newRow("CRLF") << QStringLiteral("k1\r\nk2\r\n# c\r\n\r\nk3\r\n") << three;
    QTest::newRow("duplicates keep the first position")
        << QStringLiteral("k2\nk1\nk2\nk1,k3|k2")
        << QStringList { QStringLiteral("k2"), QStringLiteral("k1"), QStringLiteral("k3") };
    QTest::newRow("mixed") << QStringLiteral("k1|k2\n\n# x\n k3, k1 ") << three;
    QTest::newRow("Bearer prefix dropped") << QStringLiteral("Bearer k1\nbearer k2\nBEARER k3") << three;
    QTest::newRow("real-looking keys")
        << QStringLiteral("sk-proj-AbC_dEf-123\nsk-ant-api03-XyZ")
        << QStringList { QStringLiteral("sk-proj-AbC_dEf-123"), QStringLiteral("sk-ant-api03-XyZ") };
    QTest::newRow("empty") << QString() << QStringList();
    QTest::newRow("only comments and blanks") << QStringLiteral("# a\n\n  # b\r\n") << QStringList();
}

void tst_KeyPool::parseKeyList()
{
    QFETCH(QString, text);
    QFETCH(QStringList, keys);
    QCOMPARE(KeyPool::parseKeyList(text), keys);
}

// Regression: a "#" after a key on the same line is read as more keys:
// "k1 # work key" gives {"k1", "#", "work", "key"}.
void tst_KeyPool::parseKeyListTrailingComment()
{
    QCOMPARE(KeyPool::parseKeyList(QStringLiteral("k1 # work key\nk2\nk3  #old")),
             (QStringList { QStringLiteral("k1"), QStringLiteral("k2"), QStringLiteral("k3") }));
}

void tst_KeyPool::signalsEmitted()
{
    KeyPool pool;
    QSignalSpy keysChanged(&pool, &KeyPool::keysChanged);
    QSignalSpy statusChanged(&pool, &KeyPool::keyStatusChanged);
    QSignalSpy failed(&pool, &KeyPool::keyFailed);
    QSignalSpy recovered(&pool, &KeyPool::keyRecovered);
    QVERIFY(keysChanged.isValid() && statusChanged.isValid() && failed.isValid() && recovered.isValid());

    QList<ApiKey> keys = makeKeys(3);
    keys[1].label = QStringLiteral("backup");
    pool.setKeys(keys);
    QCOMPARE(keysChanged.count(), 1);
    QCOMPARE(statusChanged.count(), 0);

    // Taking keys, and asking with nothing left, is not an edit, a status change or a failure.
    QVERIFY(pool.acquireFor({}, Model).isValid());
    QVERIFY(!pool.acquireFor({ idOf(0), idOf(1), idOf(2) }, Model).isValid());
    pool.snapshot();
    pool.passThrough(QStringLiteral("a|b"));
    QCOMPARE(keysChanged.count(), 1);
    QCOMPARE(statusChanged.count(), 0);
    QCOMPARE(failed.count(), 0);

    // Enabling an enabled key is no change.
    pool.setEnabled(0, true);
    QCOMPARE(keysChanged.count(), 1);
    pool.setEnabled(0, false);
    QCOMPARE(keysChanged.count(), 2);
    pool.setEnabled(0, false);
    pool.setEnabled(9, false);
    QCOMPARE(keysChanged.count(), 2);
    pool.setEnabled(0, true);
    QCOMPARE(keysChanged.count(), 3);

    // A success: status changed, nothing failed, nothing recovered (it never failed).
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(statusChanged.count(), 1);
    QCOMPARE(statusChanged.at(0).at(0).toInt(), 0);
    QCOMPARE(failed.count(), 0);
    QCOMPARE(recovered.count(), 0);

    // 401: status changed and one failure, with the label and a reason that is not the key.
    const UpstreamVerdict invalid
        = KeyPool::classify(401, R"({"error":{"message":"Incorrect API key","code":"invalid_api_key"}})");
    pool.report(idOf(1), Model, invalid.verdict, -1, invalid.reason);
    QCOMPARE(statusChanged.count(), 2);
    QCOMPARE(statusChanged.at(1).at(0).toInt(), 1);
    QCOMPARE(failed.count(), 1);
    QCOMPARE(failed.at(0).at(0).toInt(), 1);
    QCOMPARE(failed.at(0).at(1).toString(), QStringLiteral("backup"));
    QCOMPARE(failed.at(0).at(2).toString(), QStringLiteral("401 invalid_api_key: Incorrect API key"));
    QVERIFY(!failed.at(0).at(2).toString().contains(secretFor(1)));
    // Another 401 on the same, already invalid key: no second failure.
    pool.report(idOf(1), Model, invalid.verdict, -1, invalid.reason);
    QCOMPARE(statusChanged.count(), 3);
    QCOMPARE(failed.count(), 1);

    // 429: one failure with the masked label; a second 429 while cooling is not a new failure, for the
    // same model or another.
    const UpstreamVerdict limited = KeyPool::classify(429, R"({"error":{"code":"rate_limit_exceeded"}})");
    QCOMPARE(limited.verdict, KeyVerdict::RateLimited);
    pool.report(idOf(2), Model, limited.verdict, 30000, limited.reason);
    QCOMPARE(statusChanged.count(), 4);
    QCOMPARE(failed.count(), 2);
    QCOMPARE(failed.at(1).at(0).toInt(), 2);
    QCOMPARE(failed.at(1).at(1).toString(), KeyPool::mask(secretFor(2)));
    QVERIFY(!failed.at(1).at(1).toString().contains(secretFor(2)));
    QVERIFY(failed.at(1).at(2).toString().contains(QLatin1String("429")));
    pool.report(idOf(2), Model, limited.verdict, 30000, limited.reason);
    pool.report(idOf(2), OtherModel, limited.verdict, 30000, limited.reason);
    QCOMPARE(statusChanged.count(), 6);
    QCOMPARE(failed.count(), 2);

    // A server error counts but is not a key failure.
    const UpstreamVerdict overloaded = KeyPool::classify(503, R"({"error":{"message":"overloaded"}})");
    QCOMPARE(overloaded.verdict, KeyVerdict::NotKeysFault);
    pool.report(idOf(0), Model, overloaded.verdict, -1, overloaded.reason);
    QCOMPARE(statusChanged.count(), 7);
    QCOMPARE(failed.count(), 2);
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Ok);
    QCOMPARE(pool.snapshot().at(0).errors, quint64(1));

    // Keys the pool does not hold: nothing at all.
    pool.report(KeyPool::keyId(QStringLiteral("sk-removed-meanwhile-0000")), Model, KeyVerdict::Invalid, -1,
                QStringLiteral("401"));
    pool.report(QString(), Model, KeyVerdict::RateLimited, -1, QStringLiteral("429"));
    pool.resetHealth(3);
    QCOMPARE(statusChanged.count(), 7);
    QCOMPARE(failed.count(), 2);

    pool.resetHealth(1);
    QCOMPARE(statusChanged.count(), 8);
    QCOMPARE(statusChanged.last().at(0).toInt(), 1);
    // After a reset, a new 401 is a new failure.
    pool.report(idOf(1), Model, invalid.verdict, -1, invalid.reason);
    QCOMPARE(failed.count(), 3);

    // It works again: recovered once, with the label; not a failure.
    pool.report(idOf(1), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(recovered.count(), 1);
    QCOMPARE(recovered.at(0).at(0).toInt(), 1);
    QCOMPARE(recovered.at(0).at(1).toString(), QStringLiteral("backup"));
    QCOMPARE(failed.count(), 3);
    QCOMPARE(pool.snapshot().at(1).health, KeyHealth::Ok);
    QCOMPARE(pool.snapshot().at(1).lastError, QStringLiteral("works again"));
    pool.report(idOf(1), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(recovered.count(), 1); // once

    // An exhausted key fails and recovers the same way; a cool-down that ends is no "recovery".
    const UpstreamVerdict quota = KeyPool::classify(429, R"({"error":{"code":"insufficient_quota"}})");
    pool.report(idOf(0), Model, quota.verdict, -1, quota.reason);
    QCOMPARE(failed.count(), 4);
    QCOMPARE(failed.at(3).at(0).toInt(), 0);
    QCOMPARE(failed.at(3).at(2).toString(), quota.reason);
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(recovered.count(), 2);
    QCOMPARE(recovered.at(1).at(0).toInt(), 0);
    pool.report(idOf(2), Model, KeyVerdict::Success, -1, QString());
    pool.report(idOf(2), OtherModel, KeyVerdict::Success, -1, QString());
    QCOMPARE(pool.snapshot().at(2).health, KeyHealth::Ok);
    QCOMPARE(recovered.count(), 2);
    QCOMPARE(failed.count(), 4);
    QCOMPARE(keysChanged.count(), 3);
}

void tst_KeyPool::snapshotCounters()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(2));
    const QDateTime taken = clock.now;
    QCOMPARE(next(pool), 0);
    QList<KeyStatus> statuses = pool.snapshot();
    QCOMPARE(statuses.at(0).requests, quint64(1));
    QCOMPARE(statuses.at(0).lastUsed, taken);
    QVERIFY(!statuses.at(1).lastUsed.isValid());
    QCOMPARE(statuses.at(0).health, KeyHealth::Unknown);
    QCOMPARE(statuses.at(0).masked, KeyPool::mask(secretFor(0)));
    QCOMPARE(statuses.at(0).label, KeyPool::mask(secretFor(0)));
    QCOMPARE(statuses.at(0).id, idOf(0));
    QVERIFY(statuses.at(0).enabled);

    clock.now = clock.now.addSecs(5);
    answer(pool, 0, 200);
    answer(pool, 0, 201);
    answer(pool, 0, 304);
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Ok);
    QCOMPARE(pool.snapshot().at(0).errors, quint64(0));
    answer(pool, 0, 400, R"({"error":{"message":"bad request"}})");
    answer(pool, 0, 500);
    // What the proxy books when the upstream cannot be reached.
    pool.report(idOf(0), Model, KeyVerdict::NotKeysFault, -1, QStringLiteral("connection refused"));
    answer(pool, 0, 429, QByteArray(), 1000);
    statuses = pool.snapshot();
    QCOMPARE(statuses.at(0).errors, quint64(4));
    QCOMPARE(statuses.at(0).requests, quint64(1)); // results are not requests
    QCOMPARE(statuses.at(0).lastUsed, taken);
    QCOMPARE(statuses.at(0).health, KeyHealth::RateLimited);
    QCOMPARE(statuses.at(1).errors, quint64(0));

    pool.report(idOf(1), Model, KeyVerdict::NotKeysFault, -1, QStringLiteral("connection refused"));
    QCOMPARE(pool.snapshot().at(1).lastError, QStringLiteral("connection refused"));
    QCOMPARE(pool.snapshot().at(1).errors, quint64(1));
    QCOMPARE(pool.snapshot().at(1).health, KeyHealth::Unknown); // a network error says nothing about the key
    // One without a reason counts and keeps the last reason.
    pool.report(idOf(1), Model, KeyVerdict::NotKeysFault, -1, QString());
    QCOMPARE(pool.snapshot().at(1).lastError, QStringLiteral("connection refused"));
    QCOMPARE(pool.snapshot().at(1).errors, quint64(2));
}

void tst_KeyPool::threadSafety()
{
    KeyPool pool;
    pool.setKeys(makeKeys(4));
    constexpr int PerThread = 10000;
    std::atomic<int> invalid { 0 };
    const auto work = [&pool, &invalid] {
        for (int i = 0; i < PerThread; ++i) {
            const KeyLease lease = pool.acquireFor({}, i % 2 ? Model : OtherModel);
            if (!lease.isValid())
                ++invalid;
            else if (i % 100 == 0)
                pool.report(lease.keyId, Model, KeyVerdict::Success, -1, QString());
        }
    };
    std::unique_ptr<QThread> first(QThread::create(work));
    std::unique_ptr<QThread> second(QThread::create(work));
    first->start();
    second->start();
    // A reader at the same time.
    for (int i = 0; i < 200; ++i)
        QCOMPARE(pool.snapshot().size(), 4);
    QVERIFY(first->wait(30000));
    QVERIFY(second->wait(30000));
    QCOMPARE(invalid.load(), 0);

    quint64 total = 0;
    const QList<KeyStatus> statuses = pool.snapshot();
    for (const KeyStatus &status : statuses) {
        // Strict round-robin under the lock: every key got exactly a quarter.
        QCOMPARE(status.requests, quint64(2 * PerThread / 4));
        total += status.requests;
    }
    QCOMPARE(total, quint64(2 * PerThread));
}

void tst_KeyPool::classify_data()
{
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("verdict");
    const auto v = [](KeyVerdict verdict) {
        return int(verdict);
    };
    QTest::newRow("200") << 200 << QByteArray() << v(KeyVerdict::Success);
    QTest::newRow("401") << 401 << QByteArray(R"({"error":{"code":"invalid_api_key"}})")
                         << v(KeyVerdict::Invalid);
    QTest::newRow("402") << 402 << QByteArray() << v(KeyVerdict::Exhausted);
    QTest::newRow("403 key") << 403 << QByteArray(R"({"error":{"message":"API key not allowed"}})")
                             << v(KeyVerdict::Invalid);
    QTest::newRow("403 region") << 403
                                << QByteArray(R"({"error":{"code":"unsupported_country_region_territory"}})")
                                << v(KeyVerdict::NotKeysFault);
    QTest::newRow("403 model access")
        << 403 << QByteArray(R"({"error":{"message":"Your organization does not have access to model x"}})")
        << v(KeyVerdict::NotKeysFault);
    QTest::newRow("403 empty") << 403 << QByteArray() << v(KeyVerdict::NotKeysFault);
    QTest::newRow("429") << 429 << QByteArray(R"({"error":{"code":"rate_limit_exceeded"}})")
                         << v(KeyVerdict::RateLimited);
    QTest::newRow("429 quota") << 429 << QByteArray(R"({"error":{"code":"insufficient_quota"}})")
                               << v(KeyVerdict::Exhausted);
    QTest::newRow("429 billing") << 429 << QByteArray(R"({"error":{"code":"billing_hard_limit_reached"}})")
                                 << v(KeyVerdict::Exhausted);
    QTest::newRow("400") << 400 << QByteArray() << v(KeyVerdict::NotKeysFault);
    QTest::newRow("404") << 404 << QByteArray() << v(KeyVerdict::NotKeysFault);
    QTest::newRow("500") << 500 << QByteArray() << v(KeyVerdict::NotKeysFault);
}

void tst_KeyPool::classify()
{
    QFETCH(int, status);
    QFETCH(QByteArray, body);
    QFETCH(int, verdict);
    const UpstreamVerdict result = KeyPool::classify(status, body);
    QCOMPARE(int(result.verdict), verdict);
    if (status >= 400)
        QVERIFY(result.reason.startsWith(QString::number(status)));
}

void tst_KeyPool::parseDurationMs_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<qint64>("ms");
    QTest::newRow("seconds") << QByteArray("7") << qint64(7000);
    QTest::newRow("1s") << QByteArray("1s") << qint64(1000);
    QTest::newRow("6m0s") << QByteArray("6m0s") << qint64(360000);
    QTest::newRow("20ms") << QByteArray("20ms") << qint64(20);
    QTest::newRow("1h2m3.5s") << QByteArray("1h2m3.5s") << qint64(3723500);
    QTest::newRow("empty") << QByteArray() << qint64(-1);
    QTest::newRow("garbage") << QByteArray("soon") << qint64(-1);
    QTest::newRow("trailing garbage") << QByteArray("5sx") << qint64(-1);
}

void tst_KeyPool::parseDurationMs()
{
    QFETCH(QByteArray, text);
    QFETCH(qint64, ms);
    QCOMPARE(KeyPool::parseDurationMs(text), ms);
}

void tst_KeyPool::coolingIsPerModelAndEndsExactlyOnTime()
{
    KeyPool pool;
    FakeClock clock;
    pool.setClock(clock.function());
    pool.setKeys({ { QStringLiteral("sk-only-key-0000000001"), QString(), true } });
    const QString id = KeyPool::keyId(QStringLiteral("sk-only-key-0000000001"));
    pool.report(id, QStringLiteral("gpt-a"), KeyVerdict::RateLimited, 30000, QStringLiteral("429"));
    QVERIFY(!pool.acquireFor({}, QStringLiteral("gpt-a")).isValid());
    QVERIFY(pool.acquireFor({}, QStringLiteral("gpt-b")).isValid()); // other models keep the key
    clock.now = clock.now.addMSecs(29999);
    QVERIFY(!pool.acquireFor({}, QStringLiteral("gpt-a")).isValid());
    clock.now = clock.now.addMSecs(1);
    QVERIFY(pool.acquireFor({}, QStringLiteral("gpt-a")).isValid());
}

void tst_KeyPool::repeated429sBackOffExponentially()
{
    KeyPool pool;
    FakeClock clock;
    pool.setClock(clock.function());
    pool.setKeys({ { QStringLiteral("sk-only-key-0000000002"), QString(), true } });
    const QString id = KeyPool::keyId(QStringLiteral("sk-only-key-0000000002"));
    qint64 previous = 0;
    for (int i = 0; i < 5; ++i) {
        pool.report(id, QStringLiteral("m"), KeyVerdict::RateLimited, -1, QStringLiteral("429"));
        const KeyLease lease = pool.acquireFor({}, QStringLiteral("m"));
        QVERIFY(!lease.isValid());
        const qint64 wait = clock.now.msecsTo(lease.retryAt);
        QVERIFY2(wait > previous, qPrintable(QStringLiteral("%1 after %2").arg(wait).arg(previous)));
        previous = wait;
    }
    QVERIFY(previous <= 60000);
    pool.report(id, QStringLiteral("m"), KeyVerdict::Success, -1, QString());
    QVERIFY(pool.acquireFor({}, QStringLiteral("m")).isValid());
}

void tst_KeyPool::invalidKeyUsedOnceUntilItsRecheck()
{
    KeyPool pool;
    FakeClock clock;
    pool.setClock(clock.function());
    pool.setPolicy({ 300, 3600, 3 });
    const QString a = QStringLiteral("sk-key-a-00000000000001");
    const QString b = QStringLiteral("sk-key-b-00000000000002");
    pool.setKeys({ { a, QString(), true }, { b, QString(), true } });
    QSignalSpy recovered(&pool, &KeyPool::keyRecovered);
    pool.report(KeyPool::keyId(a), QString(), KeyVerdict::Invalid, -1, QStringLiteral("401"));
    for (int i = 0; i < 4; ++i)
        QCOMPARE(pool.acquireFor({}, QString()).secret, b); // skipped until its re-check
    clock.now = clock.now.addSecs(300);
    for (int i = 0; i < 2; ++i)
        QCOMPARE(pool.acquireFor({}, QString()).secret, b); // no request traffic while invalid
    const QList<KeyLease> due = pool.takeDueRechecks();
    QCOMPARE(due.size(), 1);
    QCOMPARE(due.first().secret, a);
    // The re-check found it works: back in the rotation.
    pool.report(KeyPool::keyId(a), QString(), KeyVerdict::Success, -1, QString());
    QStringList seen;
    for (int i = 0; i < 2; ++i)
        seen << pool.acquireFor({}, QString()).secret;
    QVERIFY(seen.contains(a));
    QCOMPARE(recovered.count(), 1);
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Ok);
}

void tst_KeyPool::allCoolingGivesRetryAt()
{
    KeyPool pool;
    FakeClock clock;
    pool.setClock(clock.function());
    const QString a = QStringLiteral("sk-key-a-00000000000003");
    const QString b = QStringLiteral("sk-key-b-00000000000004");
    pool.setKeys({ { a, QString(), true }, { b, QString(), true } });
    pool.report(KeyPool::keyId(a), QStringLiteral("m"), KeyVerdict::RateLimited, 20000, QString());
    pool.report(KeyPool::keyId(b), QStringLiteral("m"), KeyVerdict::RateLimited, 10000, QString());
    const KeyLease lease = pool.acquireFor({}, QStringLiteral("m"));
    QVERIFY(!lease.isValid());
    QCOMPARE(lease.retryAt, clock.now.addMSecs(10000)); // the earliest end
}

void tst_KeyPool::reportsFollowTheKeyNotItsIndex()
{
    KeyPool pool;
    const QString a = QStringLiteral("sk-key-a-00000000000005");
    const QString b = QStringLiteral("sk-key-b-00000000000006");
    pool.setKeys({ { a, QString(), true }, { b, QString(), true } });
    const KeyLease lease = pool.acquireFor({}, QString());
    QCOMPARE(lease.secret, a);
    // The list is edited while the request is in flight: a new key goes first.
    pool.setKeys({ { QStringLiteral("sk-new-key-000000000007"), QString(), true },
                   { a, QString(), true },
                   { b, QString(), true } });
    pool.report(lease.keyId, QString(), KeyVerdict::Invalid, -1, QStringLiteral("401"));
    const QList<KeyStatus> status = pool.snapshot();
    QCOMPARE(status.at(0).health, KeyHealth::Unknown); // not the key that now sits at index 0
    QCOMPARE(status.at(1).health, KeyHealth::Invalid);
}

void tst_KeyPool::rechecksAreScheduledForInvalidKeysOnly()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setPolicy(HealthPolicy { 60, 600, 3 });
    pool.setKeys(makeKeys(4));
    const QDateTime start = clock.now;
    QSignalSpy schedule(&pool, &KeyPool::recheckScheduleChanged);
    QVERIFY(!pool.nextRecheckAt().isValid()); // nothing to check: no timer needed
    answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded"}})");
    answer(pool, 1, 402);
    QVERIFY(!pool.nextRecheckAt().isValid()); // cooling and exhausted keys need no background check
    clock.now = start.addSecs(5);
    answer(pool, 2, 401);
    QVERIFY(schedule.count() >= 1);
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(65));
    clock.now = start.addSecs(10);
    answer(pool, 3, 401);
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(65)); // the earliest
    clock.now = start.addSecs(64);
    QVERIFY(pool.takeDueRechecks().isEmpty());
    clock.now = start.addSecs(65);
    QList<KeyLease> due = pool.takeDueRechecks();
    QCOMPARE(due.size(), 1);
    QCOMPARE(due.first().keyId, idOf(2));
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(70));
    // A disabled key is not checked.
    pool.setEnabled(3, false);
    clock.now = start.addSecs(3600);
    due = pool.takeDueRechecks();
    QCOMPARE(due.size(), 1);
    QCOMPARE(due.first().keyId, idOf(2));
    // The check says it still is refused: the next check is one interval later.
    answer(pool, 2, 401);
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(3660));
    QCOMPARE(pool.snapshot().at(2).health, KeyHealth::Invalid);
}

void tst_KeyPool::concurrencyLimitPerKey()
{
    KeyPool pool;
    pool.setPolicy(HealthPolicy { 300, 3600, 3, 2 });
    pool.setKeys(makeKeys(2));
    QList<KeyLease> leases;
    for (int i = 0; i < 4; ++i)
        leases.append(pool.acquireFor({}, Model));
    QList<int> order;
    for (const KeyLease &lease : std::as_const(leases))
        order.append(lease.index);
    QCOMPARE(order, (QList<int> { 0, 1, 0, 1 }));
    QCOMPARE(pool.snapshot().at(0).inFlight, 2);
    const KeyLease busy = pool.acquireFor({}, Model);
    QVERIFY(!busy.isValid());
    QVERIFY(busy.busy);
    QVERIFY(!busy.retryAt.isValid());
    QSignalSpy released(&pool, &KeyPool::keyReleased);
    pool.release(idOf(1));
    QCOMPARE(released.count(), 1);
    QCOMPARE(pool.snapshot().at(1).inFlight, 1);
    QCOMPARE(next(pool), 1); // the key with a free slot, out of turn
    QVERIFY(pool.acquireFor({}, Model).busy);
    // Excluding the keys that are busy leaves nothing at all, not "busy".
    const KeyLease none = pool.acquireFor({ idOf(0), idOf(1) }, Model);
    QVERIFY(!none.isValid());
    QVERIFY(!none.busy);
    // No limit: never busy.
    pool.setPolicy(HealthPolicy { 300, 3600, 3, 0 });
    QVERIFY(pool.acquireFor({}, Model).isValid());
    // release() of a key removed meanwhile, or released twice, never goes below zero.
    pool.release(QStringLiteral("k-gone"));
    for (int i = 0; i < 10; ++i)
        pool.release(idOf(0));
    QCOMPARE(pool.snapshot().at(0).inFlight, 0);
}

void tst_KeyPool::recoveryIsNotAlsoAFailure()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(1));
    answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded"}})", 60000, OtherModel);
    answer(pool, 0, 401);
    QSignalSpy failed(&pool, &KeyPool::keyFailed);
    QSignalSpy recovered(&pool, &KeyPool::keyRecovered);
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(recovered.count(), 1);
    QCOMPARE(failed.count(), 0);
    // Still cooling for the other model: shown as rate-limited, and it ends by itself.
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::RateLimited);
    QCOMPARE(next(pool), 0);
    QVERIFY(pool.acquireFor({}, OtherModel).retryAt.isValid());
}

void tst_KeyPool::rateLimitOnInvalidKeyKeepsItsRecheck()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(1));
    const QDateTime start = clock.now;
    answer(pool, 0, 401, R"({"error":{"code":"invalid_api_key","message":"Incorrect API key provided"}})");
    const QString reason = pool.snapshot().at(0).lastError;
    answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded"}})", 3600 * 1000);
    const KeyStatus status = pool.snapshot().at(0);
    QCOMPARE(status.health, KeyHealth::Invalid);
    QCOMPARE(status.lastError, reason);
    QCOMPARE(status.recheckAt, start.addSecs(300));
    QCOMPARE(pool.nextRecheckAt(), start.addSecs(300));
}

void tst_KeyPool::reenablingStartsAfresh()
{
    FakeClock clock;
    KeyPool pool;
    pool.setClock(clock.function());
    pool.setKeys(makeKeys(2));
    for (int i = 0; i < 3; ++i)
        answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded"}})");
    answer(pool, 1, 401);
    pool.setEnabled(0, false);
    pool.setEnabled(0, true);
    pool.setEnabled(1, false);
    pool.setEnabled(1, true);
    for (int i : { 0, 1 }) {
        const KeyStatus status = pool.snapshot().at(i);
        QCOMPARE(status.health, KeyHealth::Unknown);
        QVERIFY(status.consecutive429.isEmpty());
        QVERIFY(status.coolingByModel.isEmpty());
        QVERIFY(status.lastError.isEmpty());
        QVERIFY(!status.recheckAt.isValid());
    }
    QVERIFY(!pool.nextRecheckAt().isValid());
    // The back-off starts again at one second.
    answer(pool, 0, 429, R"({"error":{"code":"rate_limit_exceeded"}})");
    QCOMPARE(pool.snapshot().at(0).coolingUntil, clock.now.addSecs(1));
}

void tst_KeyPool::failureWithoutReasonStillSignalled()
{
    KeyPool pool;
    pool.setKeys(makeKeys(2));
    QSignalSpy failed(&pool, &KeyPool::keyFailed);
    pool.report(idOf(0), Model, KeyVerdict::Invalid, -1, QString());
    pool.report(idOf(1), Model, KeyVerdict::Exhausted, -1, QString());
    QCOMPARE(failed.count(), 2);
    QVERIFY(!failed.at(0).at(2).toString().isEmpty());
    QVERIFY(!pool.snapshot().at(1).lastError.isEmpty());
}

void tst_KeyPool::statusChangeSignalledOncePerSnapshot()
{
    KeyPool pool;
    pool.setKeys(makeKeys(2));
    QSignalSpy coalesced(&pool, &KeyPool::statusChangedSinceSnapshot);
    QSignalSpy each(&pool, &KeyPool::keyStatusChanged);
    for (int i = 0; i < 50; ++i)
        pool.report(idOf(i % 2), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(each.count(), 50);
    QCOMPARE(coalesced.count(), 1); // a view is woken once, however many requests ended
    QCOMPARE(pool.snapshot().at(0).health, KeyHealth::Ok);
    pool.report(idOf(0), Model, KeyVerdict::Success, -1, QString());
    QCOMPARE(coalesced.count(), 2); // read, then changed again
}

QTEST_GUILESS_MAIN(tst_KeyPool)
#include "tst_keypool.moc"
