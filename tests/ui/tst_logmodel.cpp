// LogModel: ring buffer bound, batched flushes, filter, CSV quoting.
#include "logmodel.h"
#include "logpage.h"

#include <QComboBox>
#include <QElapsedTimer>
#include <QLineEdit>
#include <QScrollBar>
#include <QTableView>

#include <QSignalSpy>
#include <QTest>

using namespace keyrelay;

namespace {
RequestRecord makeRecord(quint64 id, int status = 200,
                         const QString &path = QStringLiteral("/v1/chat/completions"))
{
    RequestRecord record;
    record.id = id;
    record.startedAt = QDateTime::currentDateTimeUtc();
    record.method = QStringLiteral("POST");
    record.path = path;
    record.model = QStringLiteral("gpt-4o");
    record.keyLabel = QStringLiteral("sk-…abcd");
    record.status = status;
    record.latencyMs = 12;
    record.responseBytes = 1234;
    record.totalTokens = 7;
    record.promptTokens = 5;
    record.completionTokens = 2;
    return record;
}
} // namespace

class TestLogModel : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void boundHoldsAfterManyRecords()
    {
        LogModel model(nullptr, LogModel::DefaultCapacity, 100000); // flush only when asked
        QCOMPARE(model.capacity(), 10000);
        for (quint64 i = 1; i <= 25000; ++i) {
            model.append(makeRecord(i));
            if (i % 3000 == 0)
                model.flush();
        }
        model.flush();
        QCOMPARE(model.rowCount(), 10000);
        QCOMPARE(model.record(0).id, quint64(15001));
        QCOMPARE(model.record(9999).id, quint64(25000));
    }

    void oneBigBurstKeepsNewest()
    {
        LogModel model(nullptr, 100, 100000);
        for (quint64 i = 1; i <= 250; ++i)
            model.append(makeRecord(i));
        QVERIFY(model.pendingCount() <= 100);
        model.flush();
        QCOMPARE(model.rowCount(), 100);
        QCOMPARE(model.record(0).id, quint64(151));
    }

    void rowsAppearAfterTheFlush()
    {
        LogModel model(nullptr, 10000, 150);
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        for (quint64 i = 1; i <= 500; ++i)
            model.append(makeRecord(i));
        QCOMPARE(model.rowCount(), 0); // nothing before the timer fires
        QTRY_COMPARE(model.rowCount(), 500);
        QCOMPARE(inserted.count(), 1); // one batch
        const QList<QVariant> args = inserted.first();
        QCOMPARE(args.at(1).toInt(), 0);
        QCOMPARE(args.at(2).toInt(), 499);
    }

    void removalsAreBatchedToo()
    {
        LogModel model(nullptr, 1000, 100000);
        for (quint64 i = 1; i <= 1000; ++i)
            model.append(makeRecord(i));
        model.flush();
        QSignalSpy removed(&model, &QAbstractItemModel::rowsRemoved);
        for (quint64 i = 1001; i <= 1300; ++i)
            model.append(makeRecord(i));
        model.flush();
        QCOMPARE(removed.count(), 1);
        QCOMPARE(removed.first().at(2).toInt(), 299);
        QCOMPARE(model.rowCount(), 1000);
        QCOMPARE(model.record(0).id, quint64(301));
    }

    void clearEmpties()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1));
        model.flush();
        model.append(makeRecord(2));
        model.clear();
        model.flush();
        QCOMPARE(model.rowCount(), 0);
    }

    void filter()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1, 200, QStringLiteral("/v1/models")));
        model.append(makeRecord(2, 401));
        model.append(makeRecord(3, 200));
        RequestRecord failed = makeRecord(4, 0);
        failed.error = QStringLiteral("client went away");
        model.append(failed);
        model.flush();
        LogFilterModel filter;
        filter.setSourceModel(&model);
        QCOMPARE(filter.rowCount(), 4);
        filter.setErrorsOnly(true);
        QCOMPARE(filter.rowCount(), 2);
        filter.setErrorsOnly(false);
        filter.setText(QStringLiteral("MODELS"));
        QCOMPARE(filter.rowCount(), 1);
        filter.setText(QStringLiteral("went away"));
        QCOMPARE(filter.rowCount(), 1);
    }

    void followPausesWhenScrolledUp()
    {
        LogModel model(nullptr, 10000, 20);
        LogPage page(&model);
        page.resize(900, 300);
        page.show();
        QVERIFY(QTest::qWaitForWindowExposed(&page));
        QScrollBar *bar = page.view()->verticalScrollBar();
        for (quint64 i = 1; i <= 200; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 200);
        QTRY_VERIFY(bar->maximum() > 0);
        QTRY_COMPARE(bar->value(), bar->maximum()); // follows the newest row
        QVERIFY(page.isFollowing());

        bar->setValue(0); // the user scrolls up
        QVERIFY(!page.isFollowing());
        for (quint64 i = 201; i <= 400; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 400);
        QCOMPARE(bar->value(), 0); // stays where the user is

        bar->setValue(bar->maximum()); // back at the bottom: follows again
        QVERIFY(page.isFollowing());
        for (quint64 i = 401; i <= 600; ++i)
            model.append(makeRecord(i));
        QTRY_COMPARE(page.view()->model()->rowCount(), 600);
        QTRY_COMPARE(bar->value(), bar->maximum());
    }

    void burstKeepsTheUiResponsive()
    {
        // 20,000 records arriving "at once" become a handful of model updates, not 20,000.
        LogModel model(nullptr, 10000, 100);
        LogPage page(&model);
        page.show();
        QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
        QElapsedTimer timer;
        timer.start();
        for (quint64 i = 1; i <= 20000; ++i) {
            model.append(makeRecord(i));
            if (i % 2000 == 0)
                QCoreApplication::processEvents();
        }
        QTRY_VERIFY(model.pendingCount() == 0 && model.rowCount() == 10000 && model.record(9999).id == 20000);
        QVERIFY(inserted.count() <= 20); // one per flush (100 ms), however fast the records come
        qInfo() << "20000 records shown in" << timer.elapsed() << "ms with" << inserted.count()
                << "insertion(s)";
    }

    void filterWidgets()
    {
        LogModel model(nullptr, 100, 100000);
        model.append(makeRecord(1, 200));
        model.append(makeRecord(2, 429));
        model.flush();
        LogPage page(&model);
        QCOMPARE(page.view()->model()->rowCount(), 2);
        page.statusFilter()->setCurrentIndex(1);
        QCOMPARE(page.view()->model()->rowCount(), 1);
        page.statusFilter()->setCurrentIndex(0);
        page.filterEdit()->setText(QStringLiteral("no such thing"));
        QCOMPARE(page.view()->model()->rowCount(), 0);
    }

    void csvField_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("plain") << QStringLiteral("abc") << QStringLiteral("abc");
        QTest::newRow("empty") << QString() << QString();
        QTest::newRow("comma") << QStringLiteral("a,b") << QStringLiteral("\"a,b\"");
        QTest::newRow("quote") << QStringLiteral("say \"hi\"") << QStringLiteral("\"say \"\"hi\"\"\"");
        QTest::newRow("newline") << QStringLiteral("line1\nline2") << QStringLiteral("\"line1\nline2\"");
        QTest::newRow("cr") << QStringLiteral("a\rb") << QStringLiteral("\"a\rb\"");
        QTest::newRow("leading space") << QStringLiteral(" x") << QStringLiteral("\" x\"");
        QTest::newRow("unicode") << QStringLiteral("模型") << QStringLiteral("模型");
        // Formula injection: a spreadsheet must see text, not a formula.
        QTest::newRow("equals") << QStringLiteral("=HYPERLINK(\"http://x\")")
                                << QStringLiteral("\"'=HYPERLINK(\"\"http://x\"\")\"");
        QTest::newRow("plus") << QStringLiteral("+cmd|' /C calc'!A0")
                              << QStringLiteral("'+cmd|' /C calc'!A0");
        QTest::newRow("minus formula") << QStringLiteral("-2+3") << QStringLiteral("'-2+3");
        QTest::newRow("at") << QStringLiteral("@SUM(A1)") << QStringLiteral("'@SUM(A1)");
        QTest::newRow("leading tab") << QStringLiteral("\t=1") << QStringLiteral("'\t=1");
        QTest::newRow("negative number stays") << QStringLiteral("-1") << QStringLiteral("-1");
        QTest::newRow("dash stays") << QStringLiteral("-") << QStringLiteral("-");
    }

    void csvField()
    {
        QFETCH(QString, text);
        QFETCH(QString, expected);
        QCOMPARE(LogModel::csvField(text), expected);
    }

    void csvExport()
    {
        LogModel model(nullptr, 100, 100000);
        RequestRecord record = makeRecord(1, 500, QStringLiteral("/v1/chat/completions?a=1,2"));
        record.error = QStringLiteral("upstream said \"no\",\nthen hung up");
        model.append(record);
        model.flush();
        const QString csv = model.toCsv({ 0 });
        const QStringList lines = csv.split(QStringLiteral("\r\n"));
        QCOMPARE(lines.size(), 3); // header, row, empty after the final CRLF
        QVERIFY(lines.at(0).startsWith(QStringLiteral("Time,Method,Path,Model,Key,Status")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",\"/v1/chat/completions?a=1,2\",")));
        QVERIFY(lines.at(1).endsWith(QStringLiteral(",\"upstream said \"\"no\"\",\nthen hung up\"")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",500,")));
        QVERIFY(lines.at(1).contains(QStringLiteral(",7 (5+2),")));
    }
};

QTEST_MAIN(TestLogModel)
#include "tst_logmodel.moc"
