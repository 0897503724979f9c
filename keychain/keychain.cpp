#include "keychain.h"

#include <qt6keychain/keychain.h>

#include <QCoreApplication>
#include <QEventLoop>
#include <QLoggingCategory>
#include <QTimer>

#include <atomic>

Q_LOGGING_CATEGORY(lcKeychain, "keyrelay.keychain", QtInfoMsg)

namespace keyrelay {

namespace {

std::atomic<int> s_abandoned { 0 };

struct JobResult
{
    bool finished = false;
    QKeychain::Error error = QKeychain::NoError;
    QString errorString;
    QByteArray data;
};

/// Starts @p job and waits for it at most @p timeoutMs. The job deletes itself when it finishes (also
/// after a timeout: the backend still holds a pointer to it, so it must outlive its late answer).
JobResult runJob(QKeychain::Job *job, int timeoutMs)
{
    JobResult result;
    QEventLoop loop;
    QTimer timer;
    timer.setSingleShot(true);
    job->setAutoDelete(true);
    QObject::connect(job, &QKeychain::Job::finished, &loop, [&result, &loop](QKeychain::Job *done) {
        result.finished = true;
        result.error = done->error();
        result.errorString = done->errorString();
        if (auto *read = qobject_cast<QKeychain::ReadPasswordJob *>(done))
            result.data = read->textData().toUtf8();
        loop.quit();
    });
    QObject::connect(&timer, &QTimer::timeout, &loop, &QEventLoop::quit);
    job->start();
    timer.start(timeoutMs);
    if (!result.finished)
        loop.exec(QEventLoop::ExcludeUserInputEvents);
    if (!result.finished) {
        // The connection to `loop` ends with this function; count the job until it is destroyed.
        ++s_abandoned;
        QObject::connect(job, &QObject::destroyed, [] { --s_abandoned; });
    }
    return result;
}

Keychain::Status statusOf(const JobResult &result, int timeoutMs, QString *error)
{
    if (!result.finished) {
        *error
            = QStringLiteral("the system keychain did not answer within %1 s").arg((timeoutMs + 999) / 1000);
        return Keychain::Status::Unavailable;
    }
    switch (result.error) {
    case QKeychain::NoError:
        return Keychain::Status::Ok;
    case QKeychain::EntryNotFound:
        return Keychain::Status::NotFound;
    case QKeychain::NoBackendAvailable:
    case QKeychain::NotImplemented:
    case QKeychain::OtherError:
        *error = result.errorString.isEmpty() ? QStringLiteral("no system keychain is available")
                                              : result.errorString;
        return Keychain::Status::Unavailable;
    case QKeychain::AccessDeniedByUser:
    case QKeychain::AccessDenied:
    case QKeychain::CouldNotDeleteEntry:
        break;
    }
    *error = result.errorString.isEmpty() ? QStringLiteral("the system keychain refused access")
                                          : result.errorString;
    return Keychain::Status::Failed;
}

} // namespace

Keychain::Keychain(const QString &service, int timeoutMs) : m_service(service), m_timeoutMs(timeoutMs) { }

Keychain::Status Keychain::read(const QString &entry, QByteArray *data, QString *error) const
{
    data->clear();
    auto *job = new QKeychain::ReadPasswordJob(m_service);
    job->setKey(entry);
    JobResult result = runJob(job, m_timeoutMs);
    const Status status = statusOf(result, m_timeoutMs, error);
    if (status == Status::Ok)
        *data = std::move(result.data);
    qCDebug(lcKeychain) << "read" << entry << "from" << m_service << "->" << int(status);
    return status;
}

Keychain::Status Keychain::write(const QString &entry, const QByteArray &data, QString *error) const
{
    auto *job = new QKeychain::WritePasswordJob(m_service);
    job->setKey(entry);
    job->setTextData(QString::fromUtf8(data));
    const Status status = statusOf(runJob(job, m_timeoutMs), m_timeoutMs, error);
    qCDebug(lcKeychain) << "wrote" << entry << "to" << m_service << "->" << int(status);
    return status;
}

Keychain::Status Keychain::remove(const QString &entry, QString *error) const
{
    auto *job = new QKeychain::DeletePasswordJob(m_service);
    job->setKey(entry);
    const Status status = statusOf(runJob(job, m_timeoutMs), m_timeoutMs, error);
    qCDebug(lcKeychain) << "removed" << entry << "from" << m_service << "->" << int(status);
    return status == Status::NotFound ? Status::Ok : status;
}

int Keychain::abandonedJobs()
{
    return s_abandoned.load();
}

} // namespace keyrelay
